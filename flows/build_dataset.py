"""The `build-dataset` flow: ingest, curate, caption, bucket and export as one run, one subflow per stage.

Stages hand each other nothing but the dataset's name: each reads what it needs from the catalog and
does only the work still missing, so running the flow again resumes where an earlier run stopped.
"""

from __future__ import annotations

import logging
from typing import Any

from prefect import flow

from flows._common import fail_task, start_task
from flows.bucket import bucket_flow
from flows.caption import caption_flow
from flows.curate import curate_flow
from flows.export import export_flow
from flows.ingest import ingest_flow
from loraforge.catalog import queries
from loraforge.stages.caption import default_captioner
from loraforge.stages.context import open_context
from loraforge.stages.summary import build_summary

log = logging.getLogger(__name__)
STAGES = ("ingest", "curate", "caption", "bucket", "export")


@flow(name="build-dataset")
def build_dataset_flow(
    sources: list[str],
    dataset: str,
    workspace: str = queries.DEFAULT_WORKSPACE,
    trigger: str | None = None,
    class_word: str | None = None,
    target: str = "sdxl",
    captioner: str = "auto",
    model: str | None = None,
    template: str | None = None,
    caption_prompt: str | None = None,
    endpoint: str | None = None,
    caption_batch_size: int | None = None,
    resolution: int | None = None,
    face_detector: str = "opencv",
    max_upscale: float | None = None,
    export_format: str = "kohya",
    out: str | None = None,
    repeats: int | None = None,
    as_zip: bool = False,
    strict: bool = False,
    shard_size: int | None = None,
    task_id: str | None = None,
) -> dict[str, Any]:
    """Build a trainer-ready dataset from the sources; returns the final summary table."""
    ctx = open_context()
    with ctx.catalog.session() as session:
        dataset_id = queries.get_or_create_dataset(
            session, dataset, workspace, trigger_word=trigger, class_word=class_word, target_model=target
        ).id
        task_id = start_task(
            session,
            task_id,
            kind="build",
            dataset_id=dataset_id,
            total=len(STAGES),
            params={"sources": sources, "target": target, "format": export_format},
        )
    notes: list[str] = []
    try:
        ingested = ingest_flow(sources=sources, dataset=dataset, workspace=workspace, shard_size=shard_size)
        _stage_done(ctx, task_id)
        curate_flow(dataset=dataset, workspace=workspace, target=target)
        _stage_done(ctx, task_id)
        kind, model_ref = captioner, model
        if captioner == "auto":
            kind, model_ref, why = default_captioner(ctx.settings)
            notes.append(why)
            log.warning(why)
        caption_flow(
            dataset=dataset,
            workspace=workspace,
            captioner=kind,
            model=model_ref,
            trigger=trigger,
            class_word=class_word,
            template=template,
            prompt=caption_prompt,
            endpoint=endpoint,
            batch_size=caption_batch_size,
        )
        _stage_done(ctx, task_id)
        bucket_options: dict[str, Any] = {
            "target": target,
            "resolution": resolution,
            "face_detector": face_detector,
        }
        if max_upscale is not None:
            bucket_options["max_upscale"] = max_upscale
        bucket_flow(dataset=dataset, workspace=workspace, **bucket_options)
        _stage_done(ctx, task_id)
        exported = export_flow(
            dataset=dataset,
            format=export_format,
            out=out,
            workspace=workspace,
            repeats=repeats,
            zip=as_zip,
            strict=strict,
        )
        _stage_done(ctx, task_id)
    except BaseException as exc:
        fail_task(ctx, task_id, exc)
        raise
    with ctx.catalog.session() as session:
        summary = build_summary(
            session, queries.find_dataset(session, dataset, workspace), ingest=ingested, export=exported
        )
        summary["notes"] = notes
        queries.finish_task(session, task_id, status="COMPLETED", result=summary)
    publish_summary(summary)
    return summary


def _stage_done(ctx: Any, task_id: str) -> None:
    with ctx.catalog.session() as session:
        queries.add_task_progress(session, task_id, 1)


def publish_summary(summary: dict[str, Any]) -> None:
    from prefect.artifacts import create_table_artifact

    rows = [{"metric": key, "value": str(value)} for key, value in summary.items() if key != "notes"]
    create_table_artifact(
        table=rows, key="build-dataset-summary", description=f"Dataset {summary['dataset']}"
    )
