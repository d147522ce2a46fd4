"""The `bucket` flow: faces, bucket, crop box and processed picture for every picture not yet done, on Ray."""

from __future__ import annotations

from functools import partial
from typing import Any

from prefect import flow

from flows._common import LIFECYCLE_HOOKS, publish_table, ray_has_gpu, run_sharded, tracked_run
from loraforge.catalog.models import Dataset
from loraforge.stages.bucket import (
    BucketRecord,
    build_bucket_stage,
    finish_bucketing,
    record_bucket,
    select_bucket_work,
)
from loraforge.stages.options import BucketOptions


@flow(name="bucket", **LIFECYCLE_HOOKS)
def bucket_flow(
    dataset_id: str, options: BucketOptions, task_id: str | None = None, parent_id: str | None = None
) -> dict[str, Any]:
    """Bucket every pending or kept picture lacking a derivative with these parameters; returns the summary
    (processed, skipped, failures, images per bucket, pictures needing enlargement, underfilled buckets)."""
    with tracked_run("bucket", dataset_id, options, task_id=task_id, parent_id=parent_id) as run:
        ctx = run.ctx
        with ctx.catalog.session() as session:
            dataset = session.get(Dataset, dataset_id)
            assert dataset is not None
            target = dataset.target_model
        stage = build_bucket_stage(
            ctx, dataset_id, options, target=target, gpu_available=lambda: ray_has_gpu(ctx)
        )
        with ctx.catalog.session() as session:
            items, skipped = select_bucket_work(session, dataset_id, stage.params_hash)
        run.set_total(len(items))
        record = BucketRecord()
        for shard_record in run_sharded(run, stage, items, partial(_record, stage=stage)):
            record.merge(shard_record)
        with ctx.catalog.session() as session:
            overview = finish_bucketing(session, dataset_id, stage, batch_size=options.batch_size)
        result = {
            "target": stage.options.target,
            "params_hash": stage.params_hash,
            "selected": len(items),
            "processed": len(record.processed),
            "skipped": skipped,
            "failed": len(record.failed),
            "failures": record.failed,
            **overview,
        }
        run.complete(result)
    publish_summary_table(result)
    return {"task_id": run.task_id, **result}


def _record(session: Any, results: list[dict[str, Any]], *, stage: Any) -> BucketRecord:
    return record_bucket(session, stage, results)


def publish_summary_table(result: dict[str, Any]) -> None:
    rows = [
        {"bucket": label, "images": count} for label, count in result.get("images_per_bucket", {}).items()
    ]
    if rows:
        publish_table(table=rows, key="bucket-counts", description="Images per bucket")
    if result["failures"]:
        publish_table(table=result["failures"], key="bucket-failures", description="Pictures not done")
