"""The `bucket` flow: faces, bucket, crop box and processed picture for every picture not yet done, on Ray."""

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
from loraforge.stages.bucket import (
    LIGHT_DETECTORS,
    BucketOptions,
    BucketRecord,
    BucketStage,
    bucket_overview,
    make_current,
    record_bucket,
    select_bucket_work,
)
from loraforge.stages.context import Context, open_context


def build_bucket_stage(
    ctx: Context,
    dataset_id: str,
    options: BucketOptions,
    *,
    face_detector: str = "opencv",
    face_weights: str | None = None,
    face_margin: float = 0.25,
    output_format: str = "jpg",
) -> BucketStage:
    """The stage as every run builds it (the benchmark too); model detectors get a GPU when Ray has one."""
    needs_model = face_detector not in LIGHT_DETECTORS
    gpus = 1.0 if needs_model and ctx.settings.executor == "ray" and _ray_has_gpu(ctx) else 0.0
    return BucketStage(
        store_config=ctx.store_config,
        max_pixels=ctx.settings.max_image_pixels,
        dataset_id=dataset_id,
        options=options,
        detector=face_detector,
        detector_weights=face_weights,
        face_margin=face_margin,
        output_format=output_format,
        num_gpus=gpus,
    )


def _ray_has_gpu(ctx: Context) -> bool:
    import ray

    from ray_tasks import ensure_ray

    ensure_ray(address=ctx.settings.ray_address, num_cpus=ctx.settings.ray_num_cpus)
    return bool(ray.cluster_resources().get("GPU"))


@task(name="bucket-shard", retries=2, retry_delay_seconds=1, cache_policy=NO_CACHE)
def bucket_shard(
    stage: BucketStage, task_id: str, items: list[dict[str, Any]], offset: int, artifact_id: Any = None
) -> BucketRecord:
    """Process one shard and record it in one session; a retry rewrites the same objects and rows."""
    ctx = open_context()
    reporter = ProgressReporter(ctx, task_id, offset=offset, artifact_id=artifact_id)
    results = run_configured(ctx, stage, items, on_progress=reporter)
    with ctx.catalog.session() as session:
        record = record_bucket(session, stage, results)
    reporter.flush()
    return record


@flow(name="bucket")
def bucket_flow(
    dataset: str,
    workspace: str = queries.DEFAULT_WORKSPACE,
    target: str | None = None,
    resolution: int | None = None,
    min_reso: int | None = None,
    max_reso: int | None = None,
    step: int | None = None,
    buckets: str | None = None,
    max_upscale: float = 1.5,
    face_detector: str = "opencv",
    face_weights: str | None = None,
    face_margin: float = 0.25,
    output_format: str = "jpg",
    batch_size: int = 4,
    task_id: str | None = None,
    shard_size: int | None = None,
) -> dict[str, Any]:
    """Bucket every pending or kept picture lacking a derivative with these parameters; returns the summary
    (processed, skipped, failures, images per bucket, pictures needing enlargement, underfilled buckets)."""
    ctx = open_context()
    try:
        with ctx.catalog.session() as session:
            found = queries.find_dataset(session, dataset, workspace)
            dataset_id = found.id
            options = BucketOptions(
                target=target or found.target_model,
                resolution=resolution,
                min_reso=min_reso,
                max_reso=max_reso,
                step=step,
                buckets=buckets,
                max_upscale=max_upscale,
            )
            stage = build_bucket_stage(
                ctx,
                dataset_id,
                options,
                face_detector=face_detector,
                face_weights=face_weights,
                face_margin=face_margin,
                output_format=output_format,
            )
            items, skipped = select_bucket_work(session, dataset_id, stage.params_hash)
            task_id = start_task(
                session,
                task_id,
                kind="bucket",
                dataset_id=dataset_id,
                total=len(items),
                params={**stage.params(), "params_hash": stage.params_hash},
            )
    except BaseException as exc:
        if task_id:  # the caller's pre-created row must not stay PENDING
            fail_task(ctx, task_id, exc)
        raise
    artifact_id = new_progress_artifact("bucket", dataset) if items else None
    record = BucketRecord()
    try:
        offset = 0
        for shard in shards(items, shard_size or ctx.settings.shard_size):
            if shard:
                record.merge(bucket_shard(stage, task_id, shard, offset, artifact_id))
            offset += len(shard)
        with ctx.catalog.session() as session:
            found = queries.find_dataset(session, dataset, workspace)
            make_current(session, found, stage, batch_size=batch_size)
            session.flush()
            overview = bucket_overview(session, found)
    except BaseException as exc:
        fail_task(ctx, task_id, exc)
        raise
    result = {
        "dataset": dataset,
        "task_id": task_id,
        "target": options.target,
        "params_hash": stage.params_hash,
        "selected": len(items),
        "processed": len(record.processed),
        "skipped": skipped,
        "failed": len(record.failed),
        "failures": record.failed,
        **(overview.to_dict() if overview else {}),
    }
    with ctx.catalog.session() as session:
        queries.finish_task(session, task_id, status="COMPLETED", result=result)
    publish_summary_table(result)
    return result


def publish_summary_table(result: dict[str, Any]) -> None:
    from prefect.artifacts import create_table_artifact

    rows = [
        {"bucket": label, "images": count} for label, count in result.get("images_per_bucket", {}).items()
    ]
    if rows:
        create_table_artifact(table=rows, key="bucket-counts", description="Images per bucket")
    if result["failures"]:
        create_table_artifact(
            table=result["failures"], key="bucket-failures", description="Pictures not done"
        )
