"""The `ingest` flow: list the sources, then one retryable task per shard whose pictures run on Ray."""

from __future__ import annotations

from typing import Any

from prefect import flow, task
from prefect.cache_policies import NO_CACHE

from flows._common import (
    ProgressReporter,
    fail_task,
    new_progress_artifact,
    run_configured,
    shards,
    start_task,
)
from loraforge.catalog import queries
from loraforge.sources import enumerate_sources
from loraforge.stages.context import open_context
from loraforge.stages.ingest import IngestStage, IngestSummary, existing_sha256, record_ingest


@task(name="ingest-shard", retries=2, retry_delay_seconds=1, cache_policy=NO_CACHE)
def ingest_shard(
    dataset_id: str, task_id: str, items: list[dict[str, Any]], offset: int, artifact_id: Any = None
) -> IngestSummary:
    """Ingest one shard. Re-running it (a retry) adds nothing that is already stored."""
    ctx = open_context()
    with ctx.catalog.session() as session:
        known = frozenset(existing_sha256(session, dataset_id))
    stage = IngestStage(
        store_config=ctx.store_config,
        limits=ctx.source_limits,
        max_pixels=ctx.settings.max_image_pixels,
        known_sha256=known,
    )
    reporter = ProgressReporter(ctx, task_id, offset=offset, artifact_id=artifact_id)
    results = run_configured(ctx, stage, items, on_progress=reporter)
    with ctx.catalog.session() as session:
        summary = record_ingest(session, dataset_id, results)
    reporter.flush()
    return summary


@flow(name="ingest")
def ingest_flow(
    sources: list[str],
    dataset: str,
    workspace: str = queries.DEFAULT_WORKSPACE,
    task_id: str | None = None,
    shard_size: int | None = None,
) -> dict[str, Any]:
    """Store every picture of the sources in the dataset; returns the ingest summary."""
    ctx = open_context()
    items = enumerate_sources(sources, ctx.source_limits)
    with ctx.catalog.session() as session:
        dataset_id = queries.get_or_create_dataset(session, dataset, workspace).id
        task_id = start_task(
            session,
            task_id,
            kind="ingest",
            dataset_id=dataset_id,
            total=len(items),
            params={"sources": sources},
        )
    artifact_id = new_progress_artifact("ingest", dataset)
    summary = IngestSummary()
    size = shard_size or ctx.settings.shard_size
    try:
        offset = 0
        for shard in shards(items, size):
            summary.merge(ingest_shard(dataset_id, task_id, shard, offset, artifact_id))
            offset += len(shard)
    except BaseException as exc:
        fail_task(ctx, task_id, exc)
        raise
    result = {"dataset": dataset, "task_id": task_id, **summary.to_dict()}
    with ctx.catalog.session() as session:
        queries.finish_task(session, task_id, status="COMPLETED", result=result)
    publish_failures_table(summary)
    return result


def publish_failures_table(summary: IngestSummary) -> None:
    from prefect.artifacts import create_table_artifact

    rows = summary.failed + [
        {"filename": d["filename"], "reason": f"exact duplicate of {d['duplicate_of']}"}
        for d in summary.duplicates
    ]
    if rows:
        create_table_artifact(
            table=rows, key="ingest-skipped", description="Pictures not added, with reasons"
        )
