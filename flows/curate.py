"""The `curate` flow: measure pictures lacking features on Ray by shard, then decide once in the driver."""

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
from loraforge.catalog.models import Dataset
from loraforge.errors import NotFound
from loraforge.stages.context import open_context
from loraforge.stages.curate import (
    CurateOptions,
    CurateStage,
    CurateSummary,
    MeasureRecord,
    clip_embed,
    curate_dataset,
    curate_options,
    record_features,
    select_curate_work,
)


@task(name="curate-measure-shard", retries=2, retry_delay_seconds=1, cache_policy=NO_CACHE)
def measure_shard(
    stage: CurateStage, task_id: str, items: list[dict[str, Any]], offset: int, artifact_id: Any = None
) -> MeasureRecord:
    """Measure one shard on Ray and store its features in one session; a retry rewrites the same rows."""
    ctx = open_context()
    reporter = ProgressReporter(ctx, task_id, offset=offset, artifact_id=artifact_id)
    results = run_configured(ctx, stage, items, on_progress=reporter)
    with ctx.catalog.session() as session:
        record = record_features(session, results)
    reporter.flush()
    return record


@task(name="curate-decide", retries=2, retry_delay_seconds=1, cache_policy=NO_CACHE)
def decide_dataset(dataset_id: str, options: CurateOptions) -> CurateSummary:
    """Checks, duplicate groups and one status per picture over the whole dataset, written in one session."""
    ctx = open_context()
    with ctx.catalog.session() as session:
        dataset = session.get(Dataset, dataset_id)
        if dataset is None:
            raise NotFound(f"dataset {dataset_id} vanished during curation")
        embed = None
        if options.clip_model:
            embed = clip_embed(
                session, ctx.store, spec=options.clip_model, max_pixels=ctx.settings.max_image_pixels
            )
        return curate_dataset(session, dataset, options, embed=embed)


@flow(name="curate")
def curate_flow(
    dataset: str,
    workspace: str = queries.DEFAULT_WORKSPACE,
    thresholds: dict[str, float] | None = None,
    target: str | None = None,
    clip_model: str | None = None,
    task_id: str | None = None,
    shard_size: int | None = None,
) -> dict[str, Any]:
    """Mark every picture kept, rejected (with its issues) or duplicate (with the picture it duplicates).

    Only pictures without features of the current version are measured; manual decisions stay. Thresholds
    given here are saved in the dataset settings and apply to later runs too. Returns the summary.
    """
    ctx = open_context()
    with ctx.catalog.session() as session:
        found = queries.find_dataset(session, dataset, workspace)
        dataset_id = found.id
        options = curate_options(found, thresholds=thresholds, target=target, clip_model=clip_model)
        items, already = select_curate_work(session, dataset_id)
        task_id = start_task(
            session,
            task_id,
            kind="curate",
            dataset_id=dataset_id,
            total=len(items),
            params={"target": options.target, "thresholds": options.thresholds, "clip_model": clip_model},
        )
    stage = CurateStage(store_config=ctx.store_config, max_pixels=ctx.settings.max_image_pixels)
    artifact_id = new_progress_artifact("curate", dataset) if items else None
    record = MeasureRecord()
    try:
        offset = 0
        for shard in shards(items, shard_size or ctx.settings.shard_size):
            if shard:
                record.merge(measure_shard(stage, task_id, shard, offset, artifact_id))
            offset += len(shard)
        summary = decide_dataset(dataset_id, options)
    except BaseException as exc:
        fail_task(ctx, task_id, exc)
        raise
    result = {
        "dataset": dataset,
        "task_id": task_id,
        "target": options.target,
        "thresholds": options.thresholds,
        "clip_model": clip_model,
        "measured": len(record.measured),
        "already_measured": already,
        "failed": len(record.failed),
        "failures": [{"filename": f["filename"], "reason": f["reason"]} for f in record.failed],
        **summary.to_dict(),
    }
    with ctx.catalog.session() as session:
        queries.finish_task(session, task_id, status="COMPLETED", result=result)
    publish_summary_table(result)
    return result


def summary_rows(result: dict[str, Any]) -> list[dict[str, Any]]:
    """Outcome -> pictures, as the CLI and the Prefect artifact show them."""
    rows = [{"outcome": "kept", "images": result["kept"]}]
    rows += [{"outcome": f"rejected: {issue}", "images": n} for issue, n in result["rejected"].items()]
    rows += [{"outcome": f"{kind} duplicate", "images": n} for kind, n in result["duplicates"].items()]
    if result["manual"]:
        rows.append({"outcome": "decided by hand (unchanged)", "images": result["manual"]})
    if result["not_measured"]:
        rows.append({"outcome": "not measured (retry later)", "images": result["not_measured"]})
    return rows


def publish_summary_table(result: dict[str, Any]) -> None:
    from prefect.artifacts import create_table_artifact

    create_table_artifact(
        table=summary_rows(result), key="curate-summary", description="Curation outcome per picture"
    )
    if result["failures"]:
        create_table_artifact(
            table=result["failures"], key="curate-failures", description="Pictures that could not be measured"
        )
