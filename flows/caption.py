"""The `caption` flow: check the captioner, then one retryable task per shard that records each batch."""

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
from loraforge.captioning import max_tokens_for
from loraforge.catalog import queries
from loraforge.catalog.models import Task
from loraforge.stages.caption import (
    CaptionRecord,
    CaptionRequest,
    CaptionStage,
    build_caption_stage,
    missing_variant,
    record_captions,
    select_caption_work,
)
from loraforge.stages.context import Context, open_context


@task(name="caption-shard", retries=2, retry_delay_seconds=1, cache_policy=NO_CACHE)
def caption_shard(
    stage: CaptionStage,
    variant: str,
    task_id: str,
    items: list[dict[str, Any]],
    offset: int,
    artifact_id: Any = None,
    pool_size: int | None = None,
) -> CaptionRecord:
    """Caption one shard. Every finished batch is committed at once, so a crash or a retry loses only the
    batches in flight, and a retry captions only what is still missing."""
    ctx = open_context()
    with ctx.catalog.session() as session:
        missing = missing_variant(session, [item["image_id"] for item in items], variant)
    todo = [item for item in items if item["image_id"] in missing]
    record = CaptionRecord(already=len(items) - len(todo))
    reporter = ProgressReporter(ctx, task_id, offset=offset, artifact_id=artifact_id)
    if record.already:
        reporter(record.already)
    source_model = stage.captioner.model_ref

    def record_batch(results: list[dict[str, Any]]) -> None:
        with ctx.catalog.session() as session:
            record.merge(record_captions(session, results, variant=variant, source_model=source_model))

    run_configured(
        ctx,
        stage,
        todo,
        # A captioner without a model (template) is string formatting: not worth a trip to Ray.
        executor=None if stage.stateful else "inline",
        on_progress=reporter,
        on_results=record_batch,
        pool_size=pool_size,
    )
    reporter.flush()
    return record


@flow(name="caption")
def caption_flow(
    dataset: str,
    workspace: str = queries.DEFAULT_WORKSPACE,
    captioner: str = "template",
    model: str | None = None,
    trigger: str | None = None,
    class_word: str | None = None,
    template: str | None = None,
    prompt: str | None = None,
    variant: str | None = None,
    endpoint: str | None = None,
    api_key: str | None = None,
    prefix: str = "",
    suffix: str = "",
    placement: str = "front",
    batch_size: int | None = None,
    pool_size: int | None = None,
    num_gpus: float | None = None,
    task_id: str | None = None,
    shard_size: int | None = None,
) -> dict[str, Any]:
    """Caption every pending or kept picture that lacks the variant; returns the summary (captioned, skipped,
    failed with reasons, warnings, variant). Fails at once, with one message, when the model cannot be
    loaded or the endpoint cannot be reached."""
    ctx = open_context()
    request = CaptionRequest(
        kind=captioner,
        model=model,
        prompt=prompt,
        template=template,
        endpoint=endpoint,
        api_key=api_key,
        variant=variant,
        prefix=prefix,
        suffix=suffix,
        placement=placement,
        batch_size=batch_size,
        num_gpus=num_gpus,
    )
    with ctx.catalog.session() as session:
        found = queries.find_dataset(session, dataset, workspace)
        if trigger is not None or class_word is not None:
            found = queries.get_or_create_dataset(
                session, dataset, workspace, trigger_word=trigger, class_word=class_word
            )
        dataset_id, target_model = found.id, found.target_model
        dataset_trigger, dataset_class = found.trigger_word, found.class_word
        params = {"captioner": captioner, "model": model, "variant": variant or captioner}
        task_id = start_task(session, task_id, kind="caption", dataset_id=dataset_id, total=0, params=params)
    try:
        stage = build_caption_stage(
            request,
            settings=ctx.settings,
            store_config=ctx.store_config,
            trigger=dataset_trigger,
            class_word=dataset_class,
            max_tokens=max_tokens_for(target_model),
            gpu_available=lambda: _ray_has_gpu(ctx),
            pool_size=pool_size,
        )
        name = request.variant_name
        with ctx.catalog.session() as session:
            items, skipped = select_caption_work(session, dataset_id, name)
            session.get(Task, task_id).total = len(items)  # type: ignore[union-attr]
        artifact_id = new_progress_artifact("caption", dataset) if items else None
        record = CaptionRecord(already=skipped)
        offset = 0
        for shard in shards(items, shard_size or ctx.settings.shard_size):
            if shard:
                record.merge(caption_shard(stage, name, task_id, shard, offset, artifact_id, pool_size))
            offset += len(shard)
    except BaseException as exc:
        fail_task(ctx, task_id, exc)
        raise
    result = {
        "dataset": dataset,
        "task_id": task_id,
        "captioner": captioner,
        "model": stage.captioner.model_ref,
        "variant": name,
        "trigger": dataset_trigger,
        "selected": len(items),
        "captioned": len(record.captioned),
        "skipped": record.already,
        "kept_manual": len(record.kept_manual),
        "failed": len(record.failed),
        "failures": record.failed,
        "warnings": len(record.warnings),
        "warning_details": record.warnings,
    }
    with ctx.catalog.session() as session:
        queries.finish_task(session, task_id, status="COMPLETED", result=result)
    publish_tables(result)
    return result


def _ray_has_gpu(ctx: Context) -> bool:
    if ctx.settings.executor != "ray":
        import torch

        return bool(torch.cuda.is_available())
    import ray

    from ray_tasks import ensure_ray

    ensure_ray(address=ctx.settings.ray_address, num_cpus=ctx.settings.ray_num_cpus)
    return bool(ray.cluster_resources().get("GPU"))


def publish_tables(result: dict[str, Any]) -> None:
    from prefect.artifacts import create_table_artifact

    if result["failures"]:
        create_table_artifact(
            table=result["failures"], key="caption-failures", description="Pictures without a caption"
        )
    if result["warning_details"]:
        create_table_artifact(
            table=result["warning_details"], key="caption-warnings", description="Captions to check"
        )
