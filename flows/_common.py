"""What every flow shares: Prefect environment set-up, progress reporting, shard splitting."""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from typing import Any, TypeVar

from loraforge.catalog import queries
from loraforge.catalog.models import Task
from loraforge.config import Settings
from loraforge.stages.base import Item, ProgressCallback, Result, ResultsCallback, Stage
from loraforge.stages.context import Context

T = TypeVar("T")


def configure_prefect(settings: Settings) -> None:
    """Point Prefect at the configured server (else ephemeral) before any flow runs."""
    if settings.prefect_api_url:
        os.environ["PREFECT_API_URL"] = settings.prefect_api_url
    # Analytics in the ephemeral server cause "database is locked" errors (ENVIRONMENT.md).
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    # The ephemeral server's 20 s start budget is too tight on a busy 2-core laptop.
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")


def shards(items: Sequence[T], size: int) -> list[list[T]]:
    return [list(items[start : start + size]) for start in range(0, len(items), size)] or [[]]


class ProgressReporter:
    """Turns 'n items finished' callbacks into task-row updates and a Prefect progress artifact.

    Progress is written as an absolute count (shard offset + done in shard), so a retried shard
    does not count its items twice. Writes are throttled to a few per second.
    """

    def __init__(self, ctx: Context, task_id: str, *, offset: int, artifact_id: object | None = None) -> None:
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
            task = session.get(Task, self.task_id)
            if task is None:
                return
            task.done = min(self.offset + self.done_in_shard, task.total or 0)
            task.progress = task.done / task.total if task.total else 0.0
            progress = task.progress
        if self.artifact_id is not None:
            from prefect.artifacts import update_progress_artifact

            update_progress_artifact(self.artifact_id, progress=round(progress * 100, 1))  # type: ignore[arg-type]


def new_progress_artifact(kind: str, dataset: str) -> object | None:
    from prefect.artifacts import create_progress_artifact

    try:
        return create_progress_artifact(progress=0.0, description=f"{kind} of dataset {dataset}")
    except Exception:  # noqa: BLE001 - progress display must never fail the work
        return None


def start_task(
    session: Any, task_id: str | None, *, kind: str, dataset_id: str, total: int, params: dict[str, Any]
) -> str:
    """Mark the caller's pre-created task row running, or create one; records the Prefect run id."""
    from datetime import UTC, datetime

    from prefect.runtime import flow_run

    run_id = str(flow_run.id) if flow_run.id else None
    existing = session.get(Task, task_id) if task_id else None
    if existing is None:
        return queries.create_task(
            session, kind=kind, dataset_id=dataset_id, total=total, params=params, orchestrator_run_id=run_id
        ).id
    existing.status, existing.total, existing.dataset_id = "RUNNING", total, dataset_id
    existing.orchestrator_run_id, existing.started_at = run_id, datetime.now(UTC)
    return existing.id


def fail_task(ctx: Context, task_id: str, exc: BaseException) -> None:
    """Record why a run stopped; the exception itself goes on to Prefect."""
    with ctx.catalog.session() as session:
        queries.finish_task(session, task_id, status="FAILED", error=f"{exc.__class__.__name__}: {exc}")


def run_configured(
    ctx: Context,
    stage: Stage,
    items: Sequence[Item],
    *,
    on_progress: ProgressCallback | None = None,
    on_results: ResultsCallback | None = None,
    executor: str | None = None,
    pool_size: int | None = None,
) -> list[Result]:
    """Run a stage where the settings say (inline or the configured Ray cluster)."""
    from ray_tasks import run_stage

    return run_stage(
        stage,
        items,
        executor=executor or ctx.settings.executor,
        on_progress=on_progress,
        on_results=on_results,
        ray_address=ctx.settings.ray_address,
        ray_num_cpus=ctx.settings.ray_num_cpus,
        pool_size=pool_size,
    )
