"""What every flow shares: Prefect set-up, progress reporting, and the sharded-run helper.

A stage flow reads as: open a tracked run (flows._lifecycle: task row, heartbeat, cancellation, crash hooks),
select its work, `run_sharded` it (one retryable Prefect task per shard, the per-image work on Ray), complete.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any, TypeVar

from prefect import task
from prefect.cache_policies import NO_CACHE
from sqlalchemy.orm import Session

from flows import configure_prefect
from flows._lifecycle import LIFECYCLE_HOOKS, TrackedRun, tracked_run
from flows.orchestration import call_task, in_flow_run, local_last_try, run_flow
from loraforge import tasks
from loraforge.errors import IncompleteRun
from loraforge.stages.base import Item, Result, Stage
from loraforge.stages.context import Context, open_context
from loraforge.stages.faults import incomplete_run, is_transient

log = logging.getLogger(__name__)
__all__ = [
    "LIFECYCLE_HOOKS",
    "TrackedRun",
    "tracked_run",
    "run_sharded",
    "ProgressReporter",
    "configure_prefect",
    "in_flow_run",
    "call_task",
    "publish_table",
    "run_flow",
]
T = TypeVar("T")
R = TypeVar("R")


def shards(items: Sequence[T], size: int) -> list[list[T]]:
    return [list(items[start : start + size]) for start in range(0, len(items), size)]


class ProgressReporter:
    """Turns 'n items finished' callbacks into the task row's progress and the Prefect progress artifact.

    Progress is written as an absolute count (shard offset + done in shard), so a retried shard does not
    count its items twice. Writes are throttled to a few per second.
    """

    def __init__(self, ctx: Context, task_id: str, *, offset: int, artifact_id: Any = None) -> None:
        self.ctx, self.task_id, self.offset, self.artifact_id = ctx, task_id, offset, artifact_id
        self.done_in_shard = 0
        self._last_write = 0.0

    def __call__(self, finished: int) -> None:
        self.done_in_shard += finished
        now = time.monotonic()
        if now - self._last_write >= 0.3:
            self._last_write = now
            self.flush()

    def flush(self) -> None:
        with self.ctx.catalog.session() as session:
            tasks.set_done(session, self.task_id, self.offset + self.done_in_shard)
            row = tasks.get_task(session, self.task_id)
            progress = row.progress
        if self.artifact_id is not None:
            from prefect.artifacts import update_progress_artifact

            try:
                update_progress_artifact(self.artifact_id, progress=round(progress * 100, 1))
            except Exception:  # noqa: BLE001 - progress display must never fail the work
                log.debug("progress artifact update failed", exc_info=True)


def publish_table(**artifact: Any) -> None:
    """A table artifact on the Prefect run, when there is one to show it (see flows/orchestration.py)."""
    if not in_flow_run():
        return
    from prefect.artifacts import create_table_artifact

    create_table_artifact(**artifact)


def new_progress_artifact(kind: str) -> Any:
    if not in_flow_run():
        return None
    from prefect.artifacts import create_progress_artifact

    try:
        return create_progress_artifact(progress=0.0, description=f"{kind} progress")
    except Exception:  # noqa: BLE001 - progress display must never fail the work
        return None


Recorder = Callable[[Session, list[Result]], R]


SHARD_RETRIES = 2
"""Prefect runs a failed shard again this often: a crash, or pictures the object store did not take."""


@task(name="shard", retries=SHARD_RETRIES, retry_delay_seconds=1, cache_policy=NO_CACHE)
def run_shard(
    stage: Stage,
    items: list[Item],
    *,
    task_id: str,
    offset: int,
    record: Recorder[R],
    per_batch: bool = False,
    select: Callable[[Session, list[Item]], list[Item]] | None = None,
    after: Callable[[list[Result]], None] | None = None,
    executor: str | None = None,
    pool_size: int | None = None,
    artifact_id: Any = None,
) -> list[R]:
    """One retryable shard: the stage's work on Ray (or inline), recorded in the catalog.

    With `per_batch`, every finished batch is committed at once, so a crash or a retry loses only the
    batches in flight. `select` keeps the items still to do (a retried shard skips what is recorded);
    `after` runs once the shard's records are committed (e.g. remove staged inputs).

    Results marked transient (loraforge.stages.faults: the object store unreachable through its own
    retries) make the shard raise IncompleteRun, so Prefect runs it again. Until the last try they are
    not recorded, and without `per_batch` nothing of the shard is, so the retry records each item once.
    The last try records everything it has, then raises naming the items the store did not take.
    """
    ctx = open_context()
    last_try = _is_last_try()
    reporter = ProgressReporter(ctx, task_id, offset=offset, artifact_id=artifact_id)
    records: list[R] = []
    if select is not None:
        with ctx.catalog.session() as session:
            todo = select(session, items)
        if len(todo) < len(items):
            reporter(len(items) - len(todo))
        items = todo

    def record_batch(results: list[Result]) -> None:
        kept = results if last_try else [result for result in results if not is_transient(result)]
        if kept:
            with ctx.catalog.session() as session:
                records.append(record(session, kept))

    results = _execute(
        ctx,
        stage,
        items,
        on_progress=reporter,
        on_results=record_batch if per_batch else None,
        executor=executor,
        pool_size=pool_size,
    )
    unavailable = [result for result in results if is_transient(result)]
    retry = bool(unavailable) and not last_try
    if not per_batch and not retry:
        record_batch(results)
    reporter.flush()
    if after is not None and (per_batch or not retry):
        after([result for result in results if not is_transient(result)])
    if unavailable:
        raise _shard_incomplete(stage, offset, len(items), unavailable, last_try=last_try)
    return records


def _is_last_try() -> bool:
    """Whether this run of the shard task is its last one (a Prefect task run's, or call_task's count)."""
    from prefect.context import TaskRunContext

    context = TaskRunContext.get()
    if context is None:
        return local_last_try()
    return context.task_run.run_count > (context.task.retries or 0)


def _shard_incomplete(
    stage: Stage, offset: int, size: int, unavailable: list[Result], *, last_try: bool
) -> IncompleteRun:
    where = f"{stage.name} shard at {offset} ({len(unavailable)} of {size} pictures)"
    if last_try:
        return incomplete_run(f"{where}: the object store failed through every try", unavailable)
    log.warning("%s: the object store is unavailable; the shard will be run again", where)
    return incomplete_run(f"{where}: the object store is unavailable, the shard is run again", unavailable)


def run_sharded(
    run: TrackedRun,
    stage: Stage,
    items: Sequence[Item],
    record: Recorder[R],
    *,
    done_before: int = 0,
    **options: Any,
) -> list[R]:
    """Run the stage over the items shard by shard; returns every recorder's result, in order.

    A shard still missing pictures after its last try (the object store down throughout) ends the run:
    IncompleteRun names them, and the pictures of later shards, which would meet the same store, are
    not tried. What earlier shards and that shard's last try did is recorded. `done_before`: the run's
    items an earlier pass finished (a second pass counts its progress on from there).
    """
    what = run.kind if stage.name == run.kind else f"{run.kind}-{stage.name}"  # e.g. curate-face-embed
    shard_task = partial(call_task, run_shard.with_options(name=f"{what}-shard"))
    records: list[R] = []
    offset = 0
    for shard in shards(items, run.shard_size):
        run.check_cancelled()
        try:
            records += shard_task(
                stage,
                shard,
                task_id=run.task_id,
                offset=done_before + offset,
                record=record,
                artifact_id=run.artifact_id,
                **options,
            )
        except IncompleteRun as exc:
            not_done = [{"filename": item["name"], "error": item["reason"]} for item in exc.items]
            raise incomplete_run(
                f"{run.kind} stopped: the object store did not take these pictures through "
                f"{SHARD_RETRIES + 1} tries of their shard",
                not_done,
                not_tried=len(items) - offset - len(shard),
                advice=f"What was stored is recorded; run {run.kind} again once the store answers.",
            ) from exc
        offset += len(shard)
    run.check_cancelled()
    return records


def _execute(ctx: Context, stage: Stage, items: Sequence[Item], **options: Any) -> list[Result]:
    """Run a stage where the settings say (inline, or the configured Ray cluster)."""
    settings = ctx.settings
    executor = options.pop("executor", None) or settings.executor
    if executor == "auto":
        executor = "ray" if _wants_ray(len(items), ctx) else "inline"
    if executor == "inline" or not items:
        # Importing Ray costs half a second: a small local run never pays it.
        from loraforge.stages.runner import run_inline

        return run_inline(stage, items, options.get("on_progress"), options.get("on_results"))
    from ray_tasks import run_stage

    return run_stage(
        stage,
        items,
        executor=executor,
        ray_address=ctx.settings.ray_address,
        ray_num_cpus=ctx.settings.ray_num_cpus,
        **options,
    )


def run_configured(ctx: Context, stage: Stage, items: Sequence[Item], **options: Any) -> list[Result]:
    """The stage run outside a flow's shards (benchmarks, the export's single pass)."""
    return _execute(ctx, stage, items, **options)


def _wants_ray(count: int, ctx: Context) -> bool:
    """The auto executor: Ray for a cluster, a Ray this process already runs, or more than
    `inline_max_images` pictures; else this process, since a local Ray takes seconds to start."""
    settings = ctx.settings
    return bool(settings.ray_address) or _ray_running() or count > settings.inline_max_images


def _ray_running() -> bool:
    ray = sys.modules.get("ray")
    return ray is not None and bool(ray.is_initialized())


def ray_has_gpu(ctx: Context) -> bool:
    """Whether the executor the settings choose has a GPU to offer (a light install has no torch: none)."""
    settings = ctx.settings
    local = settings.executor == "inline" or (
        settings.executor == "auto" and not settings.ray_address and not _ray_running()
    )
    if local:
        try:
            import torch
        except ImportError:
            return False
        return bool(torch.cuda.is_available())
    import ray

    from ray_tasks import ensure_ray

    ensure_ray(address=ctx.settings.ray_address, num_cpus=ctx.settings.ray_num_cpus)
    return bool(ray.cluster_resources().get("GPU"))
