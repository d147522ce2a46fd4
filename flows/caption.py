"""The `caption` flow: check the captioner, then one retryable task per shard that records each batch."""

from __future__ import annotations

import logging
from functools import partial
from typing import Any

from prefect import flow

from flows._common import LIFECYCLE_HOOKS, publish_table, ray_has_gpu, run_sharded, tracked_run
from loraforge.captioning import max_tokens_for
from loraforge.stages.caption import (
    CaptionRecord,
    build_caption_stage,
    caption_request,
    keep_missing,
    record_captions,
    select_caption_work,
)
from loraforge.stages.caption_setup import NO_TRIGGER_HINT, NO_TRIGGER_WARNING
from loraforge.stages.datasets import apply_dataset_words
from loraforge.stages.options import CaptionOptions

log = logging.getLogger(__name__)


@flow(name="caption", **LIFECYCLE_HOOKS)
def caption_flow(
    dataset_id: str, options: CaptionOptions, task_id: str | None = None, parent_id: str | None = None
) -> dict[str, Any]:
    """Caption every pending or kept picture that lacks the variant; returns the summary (captioned, skipped,
    failed with reasons, warnings, variant). Fails at once, with one message, when the model cannot be
    loaded or the endpoint cannot be reached."""
    with tracked_run("caption", dataset_id, options, task_id=task_id, parent_id=parent_id) as run:
        ctx = run.ctx
        with ctx.catalog.session() as session:
            dataset = apply_dataset_words(
                session, dataset_id, trigger=options.trigger, class_word=options.class_word
            )
            trigger, class_word, target = dataset.trigger_word, dataset.class_word, dataset.target_model
        if not trigger:
            log.warning("%s; %s", NO_TRIGGER_WARNING, NO_TRIGGER_HINT)
        request, note = caption_request(options, ctx.settings)
        stage = build_caption_stage(
            request,
            settings=ctx.settings,
            store_config=ctx.store_config,
            trigger=trigger,
            class_word=class_word,
            max_tokens=max_tokens_for(target),
            gpu_available=lambda: ray_has_gpu(ctx),
            pool_size=options.pool_size,
        )
        variant = request.variant_name
        with ctx.catalog.session() as session:
            items, skipped = select_caption_work(session, dataset_id, variant)
        run.set_total(len(items))
        record = CaptionRecord(already=skipped)
        source_model = stage.captioner.model_ref
        for batch_record in run_sharded(
            run,
            stage,
            items,
            partial(record_captions, variant=variant, source_model=source_model),
            per_batch=True,
            select=partial(keep_missing, variant=variant),
            # A captioner without a model (template) is string formatting: not worth a trip to Ray.
            executor=None if stage.stateful else "inline",
            pool_size=options.pool_size,
        ):
            record.merge(batch_record)
        result = {
            "captioner": request.kind,
            "model": source_model,
            "variant": variant,
            "trigger": trigger,
            "note": note,
            "selected": len(items),
            "captioned": len(record.captioned),
            "skipped": record.already,
            "kept_manual": len(record.kept_manual),
            "failed": len(record.failed),
            "failures": record.failed,
            "warnings": len(record.warnings),
            "warning_details": record.warnings,
        }
        run.complete(result)
    publish_tables(result)
    return {"task_id": run.task_id, **result}


def publish_tables(result: dict[str, Any]) -> None:
    if result["failures"]:
        publish_table(
            table=result["failures"], key="caption-failures", description="Pictures without a caption"
        )
    if result["warning_details"]:
        publish_table(
            table=result["warning_details"], key="caption-warnings", description="Captions to check"
        )
