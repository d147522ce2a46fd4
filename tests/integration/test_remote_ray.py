"""Stages on a separate two-node Ray cluster joined by its GCS address (LORAFORGE_RAY_ADDRESS, host:port).

Ingest: pictures reach the workers as object keys, never as paths. Caption: a model stage runs its Ray
Data actor pool on the cluster, which Ray Client (`ray://`) cannot do.

The cluster (tests/support/ray_cluster.py) is a head and a worker node started with `ray start`, each
with its own working directory. Both nodes share this machine's disk, so the proof must not rest on
the disk alone:

- Where Linux allows it (root + `unshare`), both nodes run in a mount namespace in which the folder
  holding the test's photos is an empty tmpfs: the driver sees the photos, no Ray worker can.
- The flow is given the source as a path relative to the driver's cwd, which is neither node's cwd.
- A second test stages the photos first (`stage_sources`), deletes the folder, and only then runs the
  Ray side of the ingest on the staged upload batch: this holds on any machine.

Connecting to this cluster replaces any local Ray of the session; afterwards `ray.is_initialized()` is
False again and the next `ensure_ray()` starts a local one as usual.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy
from sqlalchemy import select

from tests.support.images import real_photo_paths
from tests.support.ray_cluster import RayCluster

# Remote probes are defined here: ship them by value, workers need not import this test module.
ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])

PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "china", "grace_hopper")


@pytest.fixture(scope="module")
def driver_only(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder that only the driver can read (hidden from the cluster where the machine allows)."""
    return tmp_path_factory.mktemp("driver-only")


@pytest.fixture(scope="module")
def remote_cluster(driver_only: Path) -> Iterator[RayCluster]:
    with RayCluster(hide_paths=[driver_only]) as cluster:
        yield cluster


@pytest.fixture
def driver(remote_cluster: RayCluster) -> Iterator[RayCluster]:
    """This process as a driver of the cluster for one test; Ray is shut down after it."""
    with remote_cluster.driver():
        yield remote_cluster
    assert not ray.is_initialized()


@ray.remote(num_cpus=1)
def _look_around(path: str) -> dict[str, object]:
    return {
        "node_id": ray.get_runtime_context().get_node_id(),
        "cwd": os.getcwd(),
        "pid": os.getpid(),
        "sees_path": os.path.exists(path),
    }


def _on_each_node(cluster: RayCluster, path: Path) -> dict[str, dict[str, object]]:
    """Node name ("head", "worker0") -> what a task pinned to that node sees."""
    names = {port: name for name, port in cluster.node_manager_ports.items()}
    seen = {}
    for node in ray.nodes():
        if not node["Alive"]:
            continue
        pinned = NodeAffinitySchedulingStrategy(node_id=node["NodeID"], soft=False)
        seen[names[node["NodeManagerPort"]]] = ray.get(
            _look_around.options(scheduling_strategy=pinned).remote(str(path)), timeout=120
        )
    return seen


def _make_photos(folder: Path) -> dict[str, bytes]:
    folder.mkdir(parents=True)
    paths = real_photo_paths()
    contents = {}
    for name in PHOTOS:
        target = folder / paths[name].name
        shutil.copy(paths[name], target)
        contents[target.name] = target.read_bytes()
    return contents


def test_cluster_has_two_nodes_in_their_own_dirs(driver: RayCluster, driver_only: Path) -> None:
    probe = driver_only / "probe.txt"
    probe.write_text("only the driver reads this")
    ray.init(address=driver.address, log_to_driver=False)
    assert ray.get_runtime_context().gcs_address == driver.address

    seen = _on_each_node(driver, probe)

    assert set(seen) == {"head", "worker0"}
    assert seen["head"]["cwd"] == str(driver.head_cwd)
    assert seen["worker0"]["cwd"] == str(driver.worker_cwds[0])
    assert seen["head"]["node_id"] != seen["worker0"]["node_id"]
    assert os.getcwd() not in {seen["head"]["cwd"], seen["worker0"]["cwd"]}
    if driver.hide_paths:
        assert not seen["head"]["sees_path"] and not seen["worker0"]["sees_path"]
    assert probe.read_text() == "only the driver reads this"


@pytest.fixture
def remote_env(driver: RayCluster, stack_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> RayCluster:
    """Catalog on Postgres, objects on the S3 server, per-image work on the remote cluster."""
    from loraforge.config import get_settings
    from loraforge.stages.context import reset_contexts

    monkeypatch.setenv("LORAFORGE_RAY_ADDRESS", driver.address)
    monkeypatch.setenv("LORAFORGE_EXECUTOR", "ray")
    get_settings.cache_clear()
    reset_contexts()
    return driver


def _new_dataset(name: str) -> str:
    from loraforge.stages.context import open_context
    from loraforge.stages.datasets import ensure_dataset

    with open_context().catalog.session() as session:
        return ensure_dataset(session, name).id


def _assert_ingested_remotely(cluster: RayCluster, dataset_id: str, photos: dict[str, bytes]) -> None:
    """Every photo is in the catalog and the store, staged inputs are gone, and the cluster did the work."""
    from loraforge.catalog.models import Image
    from loraforge.stages.context import open_context

    # The flow joined the cluster under test, not a local Ray of its own.
    assert ray.is_initialized() and ray.get_runtime_context().gcs_address == cluster.address
    ctx = open_context()
    with ctx.catalog.session() as session:
        rows = session.execute(
            select(Image.original_filename, Image.object_key).where(Image.dataset_id == dataset_id)
        ).all()
    assert len(rows) == len(photos)
    for filename, key in rows:
        assert key and ctx.store.exists(key), (filename, key)
        assert ctx.store.get(key) == photos[Path(filename).name]
    assert list(ctx.store.list("uploads/")) == []
    # The ingest batches ran as Ray tasks of this cluster (Ray logs each task name on its node).
    deadline = time.monotonic() + 10
    while True:
        ran = sum(counts["_process_batch"] for counts in cluster.task_names().values())
        if ran or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert ran >= 1, cluster.task_names()


@pytest.mark.usefixtures("prefect_harness")
def test_ingest_flow_ships_object_keys_to_remote_workers(
    remote_env: RayCluster, driver_only: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from flows.ingest import ingest_flow
    from loraforge.stages.options import IngestOptions

    cwd = driver_only / f"driver-cwd-{uuid.uuid4().hex[:8]}"
    photos = _make_photos(cwd / "photos")
    monkeypatch.chdir(cwd)  # "photos" means this folder to the driver only: the nodes have other cwds
    dataset_id = _new_dataset("remote-flow")

    summary = ingest_flow(dataset_id, IngestOptions(sources=["photos"]))

    assert summary["failures"] == []
    assert summary["added"] == len(photos)
    _assert_ingested_remotely(remote_env, dataset_id, photos)


@pytest.mark.usefixtures("prefect_harness")
def test_staged_batch_is_ingested_after_the_source_folder_is_deleted(
    remote_env: RayCluster, tmp_path: Path
) -> None:
    from flows.ingest import ingest_flow
    from loraforge.sources.staging import stage_sources
    from loraforge.stages.context import open_context
    from loraforge.stages.options import IngestOptions
    from loraforge.storage.keys import upload_prefix

    folder = tmp_path / "photos"
    photos = _make_photos(folder)
    dataset_id = _new_dataset("remote-staged")
    batch = uuid.uuid4().hex
    ctx = open_context()

    staged = stage_sources([str(folder)], ctx.source_limits, ctx.store, dataset_id=dataset_id, batch=batch)
    shutil.rmtree(folder)  # from here on, nothing can read the photos from disk

    assert len(staged) == len(photos) and all(item["key"] for item in staged)
    assert len(list(ctx.store.list(upload_prefix(dataset_id, batch)))) == len(photos)
    summary = ingest_flow(dataset_id, IngestOptions(upload_batch=batch))

    assert summary["failures"] == []
    assert summary["added"] == len(photos)
    _assert_ingested_remotely(remote_env, dataset_id, photos)


@pytest.mark.usefixtures("prefect_harness")
def test_model_caption_stage_runs_its_actor_pool_on_the_cluster(
    remote_env: RayCluster, stack_env: dict[str, str], tmp_path: Path
) -> None:
    """The GPU scaling path: a model stage's Ray Data actor pool, reached through LORAFORGE_RAY_ADDRESS.

    Through Ray Client (`ray://`) this failed with "'Worker' object has no attribute 'core_worker'". The
    model lies in a folder every node sees, as the chart's models volume is.
    """
    from flows.ingest import ingest_flow
    from loraforge.catalog.models import Caption, Image
    from loraforge.stages.context import open_context
    from loraforge.stages.options import IngestOptions
    from tests.support.tiny_models import build_tiny_blip

    photos = _make_photos(tmp_path / "photos")
    model = build_tiny_blip(tmp_path / "models" / "tiny-blip")
    dataset_id = _new_dataset("remote-caption")
    assert ingest_flow(dataset_id, IngestOptions(sources=[str(tmp_path / "photos")]))["failures"] == []

    # The caption run is its own process, as a flow run on a worker is: it joins the cluster as a driver
    # by the GCS address in LORAFORGE_RAY_ADDRESS (and Ray Data's per-process state starts clean).
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LORAFORGE_", "RAY_"))}
    env |= (
        stack_env
        | remote_env.driver_env
        | {
            "LORAFORGE_RAY_ADDRESS": remote_env.address,
            "LORAFORGE_EXECUTOR": "ray",
        }
    )
    exe = shutil.which("loraforge", path=str(Path(sys.executable).parent)) or "loraforge"
    done = subprocess.run(
        [exe, "caption", "--dataset", "remote-caption", "--captioner", "blip", "--model", str(model)]
        + ["--trigger", "ohwx", "--batch-size", "2", "--pool-size", "1", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )

    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads(done.stdout)
    assert (summary["captioned"], summary["failed"]) == (len(photos), 0), summary
    with open_context().catalog.session() as session:
        captions = session.scalars(
            select(Caption.text)
            .join(Image, Image.id == Caption.image_id)
            .where(Image.dataset_id == dataset_id, Caption.is_active, Caption.variant == "blip")
        ).all()
    assert len(captions) == len(photos) and all(text.startswith("ohwx") for text in captions)
    # The model ran in actors that the cluster's nodes created (Ray logs each actor's class on its node).
    deadline = time.monotonic() + 10
    while True:
        actors = {node: counts for node, counts in remote_env.actor_names().items() if counts}
        model_actors = sum(
            count for counts in actors.values() for name, count in counts.items() if "_StageUDF" in name
        )
        if model_actors or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert model_actors >= 1, remote_env.actor_names()
