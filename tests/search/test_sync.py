"""Saved queries re-run on the source-sync schedule for the datasets that opted in, from their cursors."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from loraforge.catalog.models import Dataset, Image
from loraforge.errors import Conflict
from loraforge.sources.search import SearchRequest, run_search, sync_saved_searches
from loraforge.stages.context import Context, open_context
from loraforge.stages.datasets import ensure_dataset
from loraforge.stages.options import IngestOptions
from services.cli.main import app
from tests.support.fake_providers import FakeProvider

pytestmark = pytest.mark.usefixtures("prefect_harness", "search_env")


def ingest_for(dataset_id: str) -> Any:
    from flows.ingest import ingest_flow

    return lambda batch: ingest_flow(dataset_id, IngestOptions(upload_batch=batch))


def images(ctx: Context, dataset_id: str) -> int:
    with ctx.catalog.session() as session:
        return (
            session.scalar(select(func.count()).select_from(Image).where(Image.dataset_id == dataset_id)) or 0
        )


def test_opted_in_datasets_rerun_their_saved_queries(fakes: dict[str, FakeProvider]) -> None:
    ctx = open_context()
    with ctx.catalog.session() as session:
        synced_id = ensure_dataset(session, "synced").id
        quiet_id = ensure_dataset(session, "quiet").id
    request = SearchRequest("1girl", providers=("danbooru",), ratings=None, limit=5)
    for dataset_id in (synced_id, quiet_id):
        assert (
            run_search(ctx, dataset_id, request, ingest=ingest_for(dataset_id)).providers["danbooru"].added
            == 5
        )

    result = CliRunner().invoke(app, ["search", "--dataset", "synced", "--sync", "on"])
    assert result.exit_code == 0 and "re-runs its saved queries" in result.output, result.output
    with ctx.catalog.session() as session:
        assert session.get(Dataset, synced_id).settings["sync_searches"] is True  # type: ignore[union-attr]

    from flows.maintenance import sync_sources_flow

    outcome = sync_sources_flow()["searches"]  # the scheduled source-sync job
    assert list(outcome["synced"]) == [f"{synced_id}:1girl"] and outcome["failed"] == {}
    assert images(ctx, synced_id) == 10 and images(ctx, quiet_id) == 5
    # It continued from the cursor: Danbooru was asked for posts below the lowest id taken so far.
    assert fakes["danbooru"].api_requests()[-1].query["page"].startswith("b")

    CliRunner().invoke(app, ["search", "--dataset", "synced", "--sync", "off"])
    assert sync_saved_searches(ctx, ingest_for=ingest_for)["synced"] == {}


def test_a_busy_dataset_keeps_its_downloads_for_the_next_run() -> None:
    from loraforge import tasks
    from loraforge.catalog.models import SearchCandidate

    ctx = open_context()
    with ctx.catalog.session() as session:
        dataset_id = ensure_dataset(session, "busy").id
        task_id = tasks.create_task(session, kind="curate", dataset_id=dataset_id).id
    request = SearchRequest("1girl", providers=("gelbooru",), ratings=None, limit=3)
    with pytest.raises(Conflict, match="busy"):
        run_search(ctx, dataset_id, request, ingest=ingest_for(dataset_id))
    with ctx.catalog.session() as session:
        statuses = session.scalars(select(SearchCandidate.status)).all()
        assert sorted(statuses) == ["found"] * 3
        assert not list(ctx.store.list(f"uploads/{dataset_id}/"))
        tasks.end_task(session, task_id, tasks.TaskStatus.CANCELLED, "test")
    again = run_search(ctx, dataset_id, request, ingest=ingest_for(dataset_id))
    assert again.providers["gelbooru"].added == 3 and images(ctx, dataset_id) == 3
