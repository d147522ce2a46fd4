"""The `curate` flow: measure pictures lacking features on Ray by shard (and, with reference faces, find
the faces of those lacking vectors), then decide once in the driver."""

from __future__ import annotations

from typing import Any

from prefect import flow, task
from prefect.cache_policies import NO_CACHE

from flows._common import LIFECYCLE_HOOKS, TrackedRun, call_task, publish_table, run_sharded, tracked_run
from loraforge.catalog.models import Dataset
from loraforge.stages.context import open_context
from loraforge.stages.curate import (
    CurateConfig,
    CurateStage,
    CurateSummary,
    MeasureRecord,
    curate_options,
    decide_curation,
    record_features,
    select_curate_work,
    summary_rows,
)
from loraforge.stages.face_embed import FaceEmbedStage, record_face_embeddings, select_face_work
from loraforge.stages.options import CurateOptions


@task(name="curate-decide", retries=2, retry_delay_seconds=1, cache_policy=NO_CACHE)
def decide_dataset(dataset_id: str, config: CurateConfig) -> CurateSummary:
    """Checks, duplicate groups and one status per picture over the whole dataset, written in one session."""
    ctx = open_context()
    with ctx.catalog.session() as session:
        return decide_curation(
            session, dataset_id, config, store=ctx.store, max_pixels=ctx.settings.max_image_pixels
        )


@flow(name="curate", **LIFECYCLE_HOOKS)
def curate_flow(
    dataset_id: str, options: CurateOptions, task_id: str | None = None, parent_id: str | None = None
) -> dict[str, Any]:
    """Mark every picture kept, rejected (with its issues) or duplicate (with the picture it duplicates).

    Only pictures without features of the current version are measured; manual decisions stay. Thresholds
    given here are saved in the dataset settings and apply to later runs too. Returns the summary.
    """
    with tracked_run("curate", dataset_id, options, task_id=task_id, parent_id=parent_id) as run:
        with run.ctx.catalog.session() as session:
            dataset = session.get(Dataset, dataset_id)
            assert dataset is not None
            config = curate_options(
                dataset,
                thresholds=options.thresholds,
                target=options.target,
                clip_model=options.clip_model,
                reject=options.reject_checks,
            )
            items, already = select_curate_work(session, dataset_id)
        run.set_total(len(items))
        stage = CurateStage(store_config=run.ctx.store_config, max_pixels=run.ctx.settings.max_image_pixels)
        record = MeasureRecord()
        for shard_record in run_sharded(run, stage, items, record_features):
            record.merge(shard_record)
        if config.identity is not None:
            embed_faces(run, dataset_id, config.identity.model, done_before=len(items))
        summary = call_task(decide_dataset, dataset_id, config)
        result = {
            "target": config.target,
            "thresholds": config.thresholds,
            "clip_model": options.clip_model,
            "measured": len(record.measured),
            "already_measured": already,
            "failed": len(record.failed),
            "failures": [{"filename": f["filename"], "reason": f["reason"]} for f in record.failed],
            **summary.to_dict(),
        }
        run.complete(result)
    publish_summary_table(result)
    return {"task_id": run.task_id, **result}


def embed_faces(run: TrackedRun, dataset_id: str, model: str, *, done_before: int) -> None:
    """The identity filter's face vectors for the pictures lacking them, on the workers, so the decide
    step only compares."""
    with run.ctx.catalog.session() as session:
        items = select_face_work(session, dataset_id, model)
    if not items:
        return
    run.set_total(done_before + len(items))
    stage = FaceEmbedStage(
        store_config=run.ctx.store_config, max_pixels=run.ctx.settings.max_image_pixels, model=model
    )
    run_sharded(run, stage, items, record_face_embeddings, done_before=done_before)


def publish_summary_table(result: dict[str, Any]) -> None:
    publish_table(
        table=summary_rows(result), key="curate-summary", description="Curation outcome per picture"
    )
    if result["failures"]:
        publish_table(
            table=result["failures"], key="curate-failures", description="Pictures that could not be measured"
        )
