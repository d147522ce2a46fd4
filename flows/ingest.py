"""The `ingest` flow: stage every input in object storage, then one retryable task per shard on Ray."""

from __future__ import annotations

import uuid
from functools import partial
from typing import Any

from prefect import flow

from flows._common import LIFECYCLE_HOOKS, publish_table, run_sharded, tracked_run
from loraforge.stages.ingest import (
    IngestStage,
    IngestSummary,
    check_all_stored,
    existing_sha256,
    record_ingest,
    remove_staged_inputs,
    stage_inputs,
)
from loraforge.stages.options import IngestOptions


@flow(name="ingest", **LIFECYCLE_HOOKS)
def ingest_flow(
    dataset_id: str, options: IngestOptions, task_id: str | None = None, parent_id: str | None = None
) -> dict[str, Any]:
    """Store every picture of the sources in the dataset; returns the ingest summary.

    Raises IncompleteRun naming the pictures the object store did not take (down through every retry of
    their shard, or refusing them): such a run is FAILED, never COMPLETED with silent failures.
    """
    with tracked_run("ingest", dataset_id, options, task_id=task_id, parent_id=parent_id) as run:
        items = stage_inputs(run.ctx, dataset_id, options, batch=options.upload_batch or uuid.uuid4().hex)
        run.set_total(len(items))
        with run.ctx.catalog.session() as session:
            known = frozenset(existing_sha256(session, dataset_id))
        stage = IngestStage(
            store_config=run.ctx.store_config,
            limits=run.ctx.source_limits,
            max_pixels=run.ctx.settings.max_image_pixels,
            known_sha256=known,
        )
        summary = IngestSummary()
        records = run_sharded(
            run,
            stage,
            items,
            partial(record_ingest, dataset_id=dataset_id),
            after=partial(remove_staged_inputs, run.ctx.store),
        )
        for record in records:
            summary.merge(record)
        if summary.not_stored:
            publish_failures_table(summary)
        check_all_stored(summary)
        result = summary.to_dict()
        run.complete(result)
    publish_failures_table(summary)
    return {"task_id": run.task_id, **result}


def publish_failures_table(summary: IngestSummary) -> None:
    rows = [{"filename": r["filename"], "reason": f"not stored: {r['error']}"} for r in summary.not_stored]
    rows += summary.failed + [
        {"filename": d["filename"], "reason": f"exact duplicate of {d['duplicate_of']}"}
        for d in summary.duplicates
    ]
    if rows:
        publish_table(table=rows, key="ingest-skipped", description="Pictures not added, with reasons")
