"""Execute a Stage over items on Ray: stateless stages as tasks, stateful ones as a Ray Data actor pool.

Both paths return one result per item in item order and report progress as batches finish, so the
caller (a Prefect task) can update the catalog. A batch that raises becomes error rows, not a failed run.
"""

from __future__ import annotations

import concurrent.futures
import logging
import os
import pickle
import threading
from collections.abc import Sequence
from typing import Any

import ray

from loraforge.stages.base import (
    Item,
    ProgressCallback,
    Result,
    ResultsCallback,
    Stage,
    batched,
    error_result,
)
from loraforge.stages.runner import run_inline

log = logging.getLogger(__name__)


_owner_lock = threading.Lock()
_owner: concurrent.futures.ThreadPoolExecutor | None = None


def ensure_ray(*, address: str | None = None, num_cpus: int | None = None) -> None:
    """Connect to the configured cluster, or start a local one once per process.

    A local Ray's GCS and raylet die with the *thread* that started them (Linux's parent-death signal
    follows the thread), and the process then exits 60 s later. Flows run in short-lived threads (the API
    starts runs that way), so Ray is always started from one thread that lives as long as the process.
    """
    if ray.is_initialized():
        return
    if threading.current_thread() is threading.main_thread():
        _init_ray(address=address, num_cpus=num_cpus)
        return
    global _owner
    with _owner_lock:
        if _owner is None:
            _owner = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="ray-owner")
    _owner.submit(_init_ray, address=address, num_cpus=num_cpus).result()


def _init_ray(*, address: str | None, num_cpus: int | None) -> None:
    if ray.is_initialized():
        return
    os.environ.setdefault("RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO", "0")
    # Ray lowers its workers' priority by default; on a shared laptop that starves the very work we run.
    os.environ.setdefault("RAY_worker_niceness", "0")
    if address:
        ray.init(address=address, ignore_reinit_error=True, log_to_driver=False)
    else:
        ray.init(
            num_cpus=num_cpus or os.cpu_count() or 1,
            include_dashboard=False,
            ignore_reinit_error=True,
            log_to_driver=False,
            logging_level=logging.WARNING,
        )


def run_stage(
    stage: Stage,
    items: Sequence[Item],
    *,
    executor: str = "ray",
    on_progress: ProgressCallback | None = None,
    on_results: ResultsCallback | None = None,
    ray_address: str | None = None,
    ray_num_cpus: int | None = None,
    pool_size: int | None = None,
) -> list[Result]:
    """Run a stage inline or on Ray; the one entry point flows use."""
    if executor == "inline" or not items:
        return run_inline(stage, items, on_progress, on_results)
    ensure_ray(address=ray_address, num_cpus=ray_num_cpus)
    return run_on_ray(stage, items, on_progress=on_progress, on_results=on_results, pool_size=pool_size)


def run_on_ray(
    stage: Stage,
    items: Sequence[Item],
    *,
    on_progress: ProgressCallback | None = None,
    on_results: ResultsCallback | None = None,
    pool_size: int | None = None,
) -> list[Result]:
    if stage.stateful:
        return _run_actor_pool(
            stage, items, on_progress=on_progress, on_results=on_results, pool_size=pool_size
        )
    return _run_tasks(stage, items, on_progress=on_progress, on_results=on_results)


@ray.remote
def _process_batch(stage: Stage, batch: list[Item]) -> list[Result]:
    stage.setup()
    return stage.process_batch(batch)


def _run_tasks(
    stage: Stage,
    items: Sequence[Item],
    *,
    on_progress: ProgressCallback | None,
    on_results: ResultsCallback | None,
) -> list[Result]:
    stage_ref = ray.put(stage)
    remote = _process_batch.options(num_cpus=stage.resources.num_cpus, num_gpus=stage.resources.num_gpus)
    batches = list(batched(items, stage.batch_size))
    # Bound what is in flight so a huge shard does not flood the object store with pending tasks.
    max_in_flight = max(2, int(ray.cluster_resources().get("CPU", 1) * 2))
    pending: dict[Any, int] = {}
    results: list[list[Result] | None] = [None] * len(batches)
    next_batch = 0
    while next_batch < len(batches) or pending:
        while next_batch < len(batches) and len(pending) < max_in_flight:
            pending[remote.remote(stage_ref, batches[next_batch])] = next_batch
            next_batch += 1
        ready, _ = ray.wait(list(pending), num_returns=1)
        index = pending.pop(ready[0])
        try:
            results[index] = ray.get(ready[0])
        except Exception as exc:  # noqa: BLE001 - a crashed batch becomes error rows
            cause = getattr(exc, "cause", None) or exc  # RayTaskError wraps the stage's own exception
            log.warning("%s batch %d failed on Ray: %r", stage.name, index, cause)
            results[index] = [
                error_result(item, f"{stage.name} failed: {cause!r}") for item in batches[index]
            ]
        if on_results:
            on_results(results[index] or [])
        if on_progress:
            on_progress(len(batches[index]))
    return [result for batch in results for result in (batch or [])]


class _PrepareUDF:
    """CPU side of an actor-pool pipeline: e.g. decode pictures before they reach the model actors."""

    def __init__(self, stage: Stage) -> None:
        self.stage = stage
        stage.setup_prepare() if hasattr(stage, "setup_prepare") else None

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        items = [pickle.loads(payload) for payload in batch["payload"]]
        prepared = self.stage.prepare_batch(items)  # type: ignore[attr-defined]
        return {"index": batch["index"], "payload": [pickle.dumps(item) for item in prepared]}


class _StageUDF:
    """Model side: one stage instance per actor, set up once, mapping batches to results."""

    def __init__(self, stage: Stage) -> None:
        self.stage = stage
        stage.setup()

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        items = [pickle.loads(payload) for payload in batch["payload"]]
        try:
            out = self.stage.process_batch(items)
        except Exception as exc:  # noqa: BLE001 - a failed batch becomes error rows
            out = [error_result(item, f"{self.stage.name} failed: {exc!r}") for item in items]
        return {"index": batch["index"], "payload": [pickle.dumps(result) for result in out]}


def _run_actor_pool(
    stage: Stage,
    items: Sequence[Item],
    *,
    on_progress: ProgressCallback | None,
    on_results: ResultsCallback | None,
    pool_size: int | None,
) -> list[Result]:
    """Ray Data map_batches: optional CPU prepare tasks feeding a pool of stage actors."""
    import numpy as np

    # Rows carry pickled payloads so arbitrary item shapes survive Arrow blocks unchanged.
    rows = [{"index": index, "payload": pickle.dumps(item)} for index, item in enumerate(items)]
    dataset = ray.data.from_items(rows)
    if hasattr(stage, "prepare_batch"):
        dataset = dataset.map_batches(
            _PrepareUDF,
            fn_constructor_args=(stage,),
            batch_size=stage.batch_size,
            num_cpus=1,
            compute=ray.data.ActorPoolStrategy(size=1),
        )
    size = pool_size or _default_pool_size(stage)
    dataset = dataset.map_batches(
        _StageUDF,
        fn_constructor_args=(stage,),
        batch_size=stage.batch_size,
        compute=ray.data.ActorPoolStrategy(size=size),
        num_cpus=stage.resources.num_cpus,
        num_gpus=stage.resources.num_gpus,
    )
    results: list[Result | None] = [None] * len(items)
    for batch in dataset.iter_batches(batch_format="numpy", batch_size=None):
        finished = []
        for index, payload in zip(np.asarray(batch["index"]).tolist(), batch["payload"], strict=True):
            results[index] = pickle.loads(payload)
            finished.append(results[index])
        if on_results:
            on_results(finished)
        if on_progress:
            on_progress(len(batch["index"]))
    return [r if r is not None else error_result(items[i], "lost in pipeline") for i, r in enumerate(results)]


def _default_pool_size(stage: Stage) -> int:
    resources = ray.cluster_resources()
    if stage.resources.num_gpus > 0 and resources.get("GPU"):
        return max(1, int(resources["GPU"] / stage.resources.num_gpus))
    return max(1, int(resources.get("CPU", 1) / max(stage.resources.num_cpus, 1)) - 1) or 1
