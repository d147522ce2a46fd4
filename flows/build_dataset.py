"""The `build-dataset` flow: ingest, curate, caption, bucket and export as one run, one subflow per stage.

Stages hand each other nothing but the dataset's id: each reads what it needs from the catalog and does only
the work still missing, so running the flow again resumes where an earlier run stopped.
"""

from __future__ import annotations

import logging
from typing import Any

from prefect import flow

from flows._common import LIFECYCLE_HOOKS, TrackedRun, publish_table, run_flow, tracked_run
from flows.bucket import bucket_flow
from flows.caption import caption_flow
from flows.curate import curate_flow
from flows.export import export_flow
from flows.ingest import ingest_flow
from loraforge import tasks
from loraforge.stages.datasets import get_dataset
from loraforge.stages.options import BuildOptions
from loraforge.stages.summary import build_summary

log = logging.getLogger(__name__)
STAGES = ("ingest", "curate", "caption", "bucket", "export")


@flow(name="build-dataset", **LIFECYCLE_HOOKS)
def build_dataset_flow(
    dataset_id: str,
    options: BuildOptions,
    task_id: str | None = None,
    out: str | None = None,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Build a trainer-ready dataset from the sources; returns the final summary table."""
    with tracked_run("build", dataset_id, options, task_id=task_id) as run:
        run.set_total(len(STAGES))
        sub = {"dataset_id": dataset_id, "parent_id": run.task_id}
        ingested = run_flow(ingest_flow, options=options.ingest(), **sub)
        _stage_done(run)
        run_flow(curate_flow, options=options.curate(), **sub)
        _stage_done(run)
        captioned = run_flow(caption_flow, options=options.caption(), **sub)
        _stage_done(run)
        run_flow(bucket_flow, options=options.bucket(), **sub)
        _stage_done(run)
        exported = run_flow(export_flow, options=options.export(), out=out, overwrite=overwrite, **sub)
        _stage_done(run)
        with run.ctx.catalog.session() as session:
            summary = build_summary(
                session, get_dataset(session, dataset_id), ingest=ingested, export=exported
            )
        summary["notes"] = [captioned["note"]] if captioned.get("note") else []
        summary["trigger"] = captioned["trigger"]
        run.complete(summary)
    publish_summary(summary)
    return {"task_id": run.task_id, **summary}


def _stage_done(run: TrackedRun) -> None:
    run.check_cancelled()
    with run.ctx.catalog.session() as session:
        tasks.add_progress(session, run.task_id, 1)


def publish_summary(summary: dict[str, Any]) -> None:
    rows = [{"metric": key, "value": str(value)} for key, value in summary.items() if key != "notes"]
    publish_table(table=rows, key="build-dataset-summary", description=f"Dataset {summary['dataset']}")
