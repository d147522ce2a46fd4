"""The Ray executor: same results as inline, in order, with failures contained to their items."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field

import pytest
import ray

from loraforge.stages.base import Item, Resources, Result
from loraforge.stages.runner import run_inline
from ray_tasks import run_stage

# Test stages live in this module; ship them to workers by value rather than by import path.
ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])

pytestmark = pytest.mark.usefixtures("ray_cluster")


@dataclass
class SquareStage:
    name: str = "square"
    version: int = 1
    resources: Resources = field(default_factory=Resources)
    batch_size: int = 3
    stateful: bool = False

    def setup(self) -> None:
        pass

    def process_batch(self, items: list[Item]) -> list[Result]:
        if any(item["n"] == 13 for item in items):
            raise RuntimeError("unlucky batch")
        return [{**item, "square": item["n"] ** 2, "pid": os.getpid(), "error": None} for item in items]


@dataclass
class ModelStage(SquareStage):
    """Stateful: setup() 'loads a model' once per actor; prepare_batch runs on CPU tasks first."""

    name: str = "model"
    stateful: bool = True

    def setup(self) -> None:
        self.loaded = os.getpid()

    def prepare_batch(self, items: list[Item]) -> list[Item]:
        return [{**item, "prepared": True} for item in items]

    def process_batch(self, items: list[Item]) -> list[Result]:
        return [{**item, "square": item["n"] ** 2, "actor": self.loaded, "error": None} for item in items]


ITEMS = [{"n": n} for n in range(20)]


def test_tasks_match_inline_results_and_contain_failures() -> None:
    seen: list[int] = []
    recorded: list[Result] = []
    results = run_stage(SquareStage(), ITEMS, on_progress=seen.append, on_results=recorded.extend)
    inline = run_inline(SquareStage(), ITEMS)
    strip = [{k: v for k, v in r.items() if k != "pid"} for r in results]
    assert strip == [{k: v for k, v in r.items() if k != "pid"} for r in inline]
    assert [r["n"] for r in results] == list(range(20))
    failed = [r["n"] for r in results if r["error"]]
    assert failed == [12, 13, 14]  # the batch holding 13 fails as a whole, as error rows
    assert "unlucky batch" in results[13]["error"]
    assert sum(seen) == 20 and len(recorded) == 20
    assert any(r["pid"] != os.getpid() for r in results if not r["error"])  # really ran in workers


def test_actor_pool_prepares_then_processes_in_order() -> None:
    recorded: list[Result] = []
    results = run_stage(ModelStage(), ITEMS, on_results=recorded.extend, pool_size=1)
    assert [r["square"] for r in results] == [n * n for n in range(20)]
    assert all(r["prepared"] for r in results)
    assert len({r["actor"] for r in results}) == 1  # one actor, model set up once
    assert sorted(r["n"] for r in recorded) == list(range(20))


def test_inline_executor_needs_no_ray() -> None:
    results = run_stage(SquareStage(), ITEMS[:4], executor="inline")
    assert [r["pid"] for r in results] == [os.getpid()] * 4


def test_ray_started_from_a_short_lived_thread_outlives_it() -> None:
    """The API runs flows in threads: Ray must not die with the thread that happened to start it."""
    import os
    import threading
    import time

    import psutil
    import ray

    from ray_tasks import ensure_ray

    ray.shutdown()
    starter = threading.Thread(target=ensure_ray, kwargs={"num_cpus": 2})
    starter.start()
    starter.join()
    time.sleep(3)  # Linux's parent-death signal would have killed the GCS by now

    def gcs_servers() -> list[int]:
        children = psutil.Process(os.getpid()).children(recursive=True)
        return [p.pid for p in children if "gcs_server" in " ".join(p.cmdline())]

    assert gcs_servers(), "the local Ray's GCS died with the thread that started it"
    assert ray.get(ray.put("alive"), timeout=30) == "alive"
