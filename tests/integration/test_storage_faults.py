"""The S3 endpoint goes down in the middle of an ingest: short outages are survived, long ones fail loudly.

The store is the session's moto server behind a TCP proxy (tests/support/flaky_proxy.py) that refuses
and resets connections while "down" and forwards again, on the same port, when back: to the client an
honest outage, while moto keeps its data. The proxy goes down on the request that stores a given
original, so the outage meets a shard's own call however fast or loaded the machine is. Store retries
are made small so the tests take seconds.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from loraforge.catalog.models import Image, Task
from loraforge.config import get_settings
from loraforge.errors import IncompleteRun
from loraforge.stages.context import open_context, reset_contexts
from loraforge.storage import ObjectStore, StoreConfig, open_store
from tests.conftest import S3Server
from tests.support import runs
from tests.support.flaky_proxy import FlakyProxy
from tests.support.images import corrupt_jpeg, jpeg_bytes

pytestmark = pytest.mark.usefixtures("prefect_harness", "ray_cluster")

PICTURES = 24
SHARD_SIZE = 8
STORE_RETRIES = {
    # One call waits 0.1 + 0.2 + 0.4 s before giving up: well under the outages below, so surviving
    # them takes Prefect running the shard again, not only the store's own retries.
    "LORAFORGE_STORAGE_RETRIES": "3",
    "LORAFORGE_STORAGE_RETRY_BACKOFF_S": "0.1",
    "LORAFORGE_STORAGE_RETRY_MAX_BACKOFF_S": "0.4",
    "LORAFORGE_STORAGE_TIMEOUT_S": "5",
}


@pytest.fixture
def proxy(s3_server: S3Server) -> Iterator[FlakyProxy]:
    running = FlakyProxy(s3_server.endpoint).start()
    yield running
    running.close()


@pytest.fixture
def env(stack_env: dict[str, str], proxy: FlakyProxy, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The stack, with LoRA Forge reaching S3 through the proxy."""
    overrides = {"LORAFORGE_S3_ENDPOINT": proxy.endpoint, **STORE_RETRIES}
    for key, value in overrides.items():
        monkeypatch.setenv(key, value)
    get_settings.cache_clear()
    reset_contexts()
    return {**stack_env, **overrides}


@pytest.fixture
def direct_store(env: dict[str, str], s3_server: S3Server) -> ObjectStore:
    """The same bucket straight on moto: what is really stored, whatever the proxy does."""
    return open_store(
        StoreConfig(
            url=env["LORAFORGE_STORAGE_URL"],
            endpoint=s3_server.endpoint,
            access_key=s3_server.access_key,
            secret_key=s3_server.secret_key,
            secure=False,
        )
    )


@pytest.fixture
def photos(tmp_path: Path) -> Path:
    folder = tmp_path / "photos"
    folder.mkdir()
    for index in range(PICTURES):
        (folder / f"photo{index:02d}.jpg").write_bytes(jpeg_bytes(320, 240, seed=100 + index))
    (folder / "corrupt.jpg").write_bytes(corrupt_jpeg())
    return folder


def originals_put(env: dict[str, str]) -> bytes:
    """The start of the HTTP request that stores an original (path-style, as the client sends it)."""
    bucket = env["LORAFORGE_STORAGE_URL"].removeprefix("s3://")
    return f"PUT /{bucket}/originals/".encode()


def shard_run_counts(task_id: str) -> list[int]:
    """How many times Prefect ran each shard task of the run (1: never retried)."""
    return [run.run_count for run in runs.prefect_task_runs(task_id) if "shard" in run.name]


def catalog_rows() -> list[Image]:
    with open_context().catalog.session() as session:
        rows = list(session.scalars(select(Image)))
        session.expunge_all()
    return rows


def stored_keys(store: ObjectStore, prefix: str) -> set[str]:
    return {info.key for info in store.list(prefix)}


def test_an_outage_in_the_middle_of_an_ingest_is_survived(
    env: dict[str, str], proxy: FlakyProxy, direct_store: ObjectStore, photos: Path
) -> None:
    # Down for 2 s on the request storing the tenth original, before it reaches the store: the call that
    # meets the outage is a shard's, in the middle of the ingest, however the machine times the work.
    proxy.outage_on_request(originals_put(env), 2.0, skip=9)
    summary = runs.ingest("alice", sources=[str(photos)], shard_size=SHARD_SIZE)

    assert proxy.triggered.is_set() and proxy.outages == 1
    assert max(shard_run_counts(summary["task_id"])) >= 2  # a shard met the outage and was run again
    assert summary["added"] == PICTURES
    assert [failure["filename"] for failure in summary["failures"]] == ["corrupt.jpg"]  # content: no retry
    rows = catalog_rows()
    assert sorted(row.original_filename for row in rows) == [f"photo{i:02d}.jpg" for i in range(PICTURES)]
    assert len({row.sha256 for row in rows}) == PICTURES
    assert stored_keys(direct_store, "originals/") == {row.object_key for row in rows}
    assert stored_keys(direct_store, "derived/thumbnails/") == {row.thumbnail_key for row in rows}
    assert stored_keys(direct_store, "uploads/") == set()  # every staged input removed once recorded
    with open_context().catalog.session() as session:
        task = session.get(Task, summary["task_id"])
        assert task is not None and task.status == "COMPLETED" and task.error is None


def test_content_errors_alone_never_retry_a_shard(env: dict[str, str], photos: Path) -> None:
    summary = runs.ingest("alice", sources=[str(photos)], shard_size=SHARD_SIZE)
    assert summary["added"] == PICTURES and summary["failed"] == 1
    assert shard_run_counts(summary["task_id"]) == [1] * -(-(PICTURES + 1) // SHARD_SIZE)


def test_an_outage_longer_than_the_retries_fails_the_run_naming_the_pictures(
    env: dict[str, str], proxy: FlakyProxy, direct_store: ObjectStore, photos: Path
) -> None:
    (photos / "corrupt.jpg").unlink()  # every input is then a picture to store
    proxy.outage_on_request(originals_put(env), None, skip=9)  # down, mid-ingest, until brought back
    with pytest.raises(IncompleteRun) as raised:
        runs.ingest("alice", sources=[str(photos)], shard_size=SHARD_SIZE)
    proxy.come_back()

    error = raised.value
    named = {item["name"] for item in error.items}
    message = str(error)
    assert message.startswith("ingest stopped: the object store did not take these pictures")
    assert named and all(name in message for name in named)
    assert all("unavailable" in item["reason"] for item in error.items)
    not_tried = int(re.search(r"(\d+) more pictures were not tried", message).group(1))  # type: ignore[union-attr]

    # No half-written rows: every row's objects exist; every picture is recorded, named or not tried.
    rows = catalog_rows()
    recorded = {row.original_filename for row in rows}
    assert recorded.isdisjoint(named)
    originals = stored_keys(direct_store, "originals/")
    assert all(row.object_key in originals for row in rows)
    thumbnails = stored_keys(direct_store, "derived/thumbnails/")
    assert all(row.thumbnail_key in thumbnails for row in rows)
    assert len(recorded) + len(named) + not_tried == PICTURES
    with open_context().catalog.session() as session:
        task = session.scalars(select(Task).where(Task.kind == "ingest")).one()
        assert task.status == "FAILED" and task.error and "IncompleteRun" in task.error
        assert all(name in task.error for name in named)

    # With the store back, running the ingest again adds exactly what is missing.
    again = runs.ingest("alice", sources=[str(photos)], shard_size=SHARD_SIZE)
    assert again["added"] == PICTURES - len(recorded)
    rows = catalog_rows()
    assert len(rows) == len({row.sha256 for row in rows}) == PICTURES
    assert stored_keys(direct_store, "originals/") == {row.object_key for row in rows}


def test_a_store_down_before_staging_fails_the_run_before_any_picture(
    env: dict[str, str], proxy: FlakyProxy, photos: Path
) -> None:
    proxy.go_down()
    with pytest.raises(IncompleteRun) as raised:
        runs.ingest("alice", sources=[str(photos)], shard_size=SHARD_SIZE)
    proxy.come_back()
    message = str(raised.value)
    assert message.startswith("ingest stopped before any picture was processed")
    assert {item["name"] for item in raised.value.items} == {p.name for p in photos.iterdir()}
    assert catalog_rows() == []
