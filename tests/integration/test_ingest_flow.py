"""The ingest flow on Postgres + the S3 server, with Ray and Prefect: bad input, re-runs, retries."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from loraforge.catalog.models import Image, Task
from loraforge.stages.context import open_context
from tests.support import runs
from tests.support.images import (
    corrupt_jpeg,
    jpeg_bytes,
    real_photo_paths,
    truncated_jpeg,
    zip_bomb_entry_bytes,
    zip_bytes,
)

pytestmark = pytest.mark.usefixtures("prefect_harness", "ray_cluster")

GOOD = ["astronaut.png", "coffee.png", "nested/deeper/photo1.jpg", "photo2.jpg", "pics.zip:good/inzip.jpg"]
BAD = {
    "corrupt.jpg": "corrupt",
    "truncated.jpg": "truncated",
    "text.jpg": "not an image",
    "empty.jpg": "empty file",
    "huge.jpg": "too large",
    "../../evil.jpg": "path traversal",
    "bomb.png": "zip bomb",
}


def make_source(root: Path) -> Path:
    photos = real_photo_paths()
    (root / "nested" / "deeper").mkdir(parents=True)
    shutil.copy(photos["astronaut"], root / "astronaut.png")
    shutil.copy(photos["coffee"], root / "coffee.png")
    (root / "nested" / "deeper" / "photo1.jpg").write_bytes(jpeg_bytes(seed=11))
    (root / "photo2.jpg").write_bytes(jpeg_bytes(seed=12))
    (root / "copy_of_photo2.jpg").write_bytes(jpeg_bytes(seed=12))
    (root / "corrupt.jpg").write_bytes(corrupt_jpeg())
    (root / "truncated.jpg").write_bytes(truncated_jpeg())
    (root / "text.jpg").write_text("this is not a picture")
    (root / "empty.jpg").write_bytes(b"")
    (root / "huge.jpg").write_bytes(jpeg_bytes(1400, 1000, seed=13))  # over the 1 MP limit set below
    (root / "pics.zip").write_bytes(
        zip_bytes(
            {
                "good/inzip.jpg": jpeg_bytes(seed=14),
                "../../evil.jpg": jpeg_bytes(seed=15),
                "bomb.png": zip_bomb_entry_bytes(16 * 1024 * 1024),
            }
        )
    )
    return root


@pytest.fixture
def source(tmp_path: Path, stack_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Path:
    from loraforge.config import get_settings

    monkeypatch.setenv("LORAFORGE_MAX_IMAGE_PIXELS", "1000000")
    get_settings.cache_clear()
    return make_source(tmp_path / "photos")


def ingest(source: Path, **options: Any) -> dict[str, Any]:

    return runs.ingest("alice", sources=[str(source), str(source / "pics.zip")], **options)


def catalog_snapshot() -> tuple[list[tuple[str, ...]], list[str]]:
    ctx = open_context()
    with ctx.catalog.session() as session:
        rows = session.execute(
            select(Image.id, Image.sha256, Image.original_filename, Image.object_key)
        ).all()
    return sorted(tuple(row) for row in rows), sorted(info.key for info in ctx.store.list())


def test_bad_inputs_are_reported_while_good_pictures_are_ingested(source: Path) -> None:
    summary = ingest(source, shard_size=4)
    reasons = {failure["filename"]: failure["reason"] for failure in summary["failures"]}
    for name, reason in BAD.items():
        assert reason in reasons[name], (name, reasons.get(name))
    assert summary["added"] == len(GOOD)
    assert summary["duplicate_files"] == [{"filename": "photo2.jpg", "duplicate_of": "copy_of_photo2.jpg"}]
    ctx = open_context()
    with ctx.catalog.session() as session:
        images = {image.original_filename: image for image in session.scalars(select(Image))}
        task = session.get(Task, summary["task_id"])
        assert task is not None and task.status == "COMPLETED" and task.done == task.total == summary["found"]
    assert set(images) == {
        "astronaut.png",
        "coffee.png",
        "nested/deeper/photo1.jpg",
        "copy_of_photo2.jpg",
        "good/inzip.jpg",
    }
    astronaut = images["astronaut.png"]
    assert (astronaut.width, astronaut.height, astronaut.format) == (512, 512, "png")
    assert ctx.store.get(astronaut.object_key) == real_photo_paths()["astronaut"].read_bytes()
    assert astronaut.thumbnail_key and ctx.store.exists(astronaut.thumbnail_key)
    assert len(astronaut.phash or "") == 16


def test_second_ingest_leaves_catalog_and_store_unchanged(source: Path) -> None:
    ingest(source)
    before = catalog_snapshot()
    summary = ingest(source)
    assert summary["added"] == 0
    assert summary["already_present"] == len(GOOD)
    assert len(summary["duplicate_files"]) == 1
    assert catalog_snapshot() == before


def test_retried_shard_adds_no_duplicate_rows_or_objects(
    source: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Fail each shard once *after* its rows were committed; Prefect retries it."""
    from flows import _common

    real_flush = _common.ProgressReporter.flush
    failed_offsets: set[int] = set()

    def flush_failing_once(self: _common.ProgressReporter) -> None:
        real_flush(self)
        if self.done_in_shard and self.offset not in failed_offsets:
            failed_offsets.add(self.offset)
            raise ConnectionError("simulated crash after the shard was recorded")

    monkeypatch.setattr(_common.ProgressReporter, "flush", flush_failing_once)
    summary = ingest(source, shard_size=3)
    assert len(failed_offsets) >= 3  # several shards really failed and were retried
    rows, keys = catalog_snapshot()
    assert len(rows) == len(GOOD)
    assert len({row[1] for row in rows}) == len(GOOD)
    assert len([k for k in keys if k.startswith("originals/")]) == len(GOOD)
    assert summary["failed"] == len(BAD)
