"""The ingest worker and records side tell a picture's fault from the store's (a scripted S3 server)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from loraforge.catalog import queries
from loraforge.errors import IncompleteRun
from loraforge.sources import SourceLimits
from loraforge.stages.context import open_context
from loraforge.stages.ingest import IngestStage, check_all_stored, record_ingest
from loraforge.storage import StoreConfig
from tests.support.images import corrupt_jpeg, jpeg_bytes
from tests.support.scripted_s3 import BUCKET, Reply, ScriptedS3, s3_error, scripted_s3

RETRIES = 2
STAGED = "uploads/d/b/000000/photo.jpg"


@pytest.fixture
def server() -> Iterator[ScriptedS3]:
    with scripted_s3() as running:
        yield running


def ingest_one(server: ScriptedS3, *replies: Reply) -> dict[str, Any]:
    """One staged picture through the ingest worker, the store answering `replies` in turn."""
    stage = IngestStage(
        store_config=StoreConfig(
            url=f"s3://{BUCKET}",
            endpoint=server.endpoint,
            access_key="key",
            secret_key="secret",
            secure=False,
            region="us-east-1",
            retries=RETRIES,
            retry_backoff_s=0.01,
            retry_max_backoff_s=0.01,
        ),
        limits=SourceLimits(max_file_bytes=10_000_000, max_zip_ratio=200, max_zip_total_bytes=10**9),
        max_pixels=10_000_000,
    )
    server.then(*replies)
    item = {"source_kind": "folder", "source_uri": "/photos", "filename": "photo.jpg", "key": STAGED}
    (result,) = stage.process_batch([{**item, "url": None, "error": None}])
    return result


def record(result: dict[str, Any]) -> Any:
    ctx = open_context()
    ctx.catalog.ensure_schema()
    with ctx.catalog.session() as session:
        dataset = queries.get_or_create_dataset(session, "alice")
        return record_ingest(session, [result], dataset_id=dataset.id)


@pytest.mark.usefixtures("embedded_env")
def test_a_store_refusing_a_write_is_not_retried_and_fails_the_ingest(server: ScriptedS3) -> None:
    staged = Reply(200, jpeg_bytes(64, 48, seed=3), "image/jpeg")
    result = ingest_one(server, staged, s3_error(404, "NoSuchKey"), s3_error(403, "AccessDenied"))
    assert result["error_kind"] == "storage" and not result["transient"]
    assert "AccessDenied" in result["error"]
    assert [r.method for r in server.object_requests()] == ["GET", "HEAD", "PUT"]  # the PUT once

    summary = record(result)
    assert summary.added == [] and summary.failed == [] and len(summary.not_stored) == 1
    with pytest.raises(
        IncompleteRun, match=r"did not take these pictures \(1\): photo\.jpg\. Reason: .*AccessDenied"
    ):
        check_all_stored(summary)


@pytest.mark.usefixtures("embedded_env")
def test_a_store_down_through_its_retries_marks_the_picture_transient(server: ScriptedS3) -> None:
    result = ingest_one(server, *[s3_error(503, "SlowDown")] * (RETRIES + 1))
    assert result["error_kind"] == "unavailable" and result["transient"]
    assert len(server.object_requests()) == RETRIES + 1
    assert len(record(result).not_stored) == 1


@pytest.mark.usefixtures("embedded_env")
def test_a_corrupt_picture_is_its_own_fault(server: ScriptedS3) -> None:
    result = ingest_one(server, Reply(200, corrupt_jpeg(), "image/jpeg"))
    assert result["error_kind"] == "content" and not result["transient"]
    summary = record(result)
    assert [failure["filename"] for failure in summary.failed] == ["photo.jpg"]
    check_all_stored(summary)  # a bad picture never fails the run
