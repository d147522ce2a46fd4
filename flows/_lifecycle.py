"""The tracked run around every flow: the task row, a heartbeat, cancellation, and Prefect's crash hooks."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from loraforge import tasks
from loraforge.stages.context import Context, open_context
from loraforge.stages.options import StageOptions

log = logging.getLogger(__name__)


@dataclass
class TrackedRun:
    """A flow's handle on its task row: totals, progress, and whether the user cancelled it."""

    ctx: Context
    task_id: str
    kind: str
    shard_size: int
    cancelled: threading.Event = field(default_factory=threading.Event)
    artifact_id: Any = None

    def set_total(self, total: int) -> None:
        with self.ctx.catalog.session() as session:
            tasks.set_total(session, self.task_id, total)
        if total and self.artifact_id is None:
            from flows._common import new_progress_artifact

            self.artifact_id = new_progress_artifact(self.kind)

    def check_cancelled(self) -> None:
        if self.cancelled.is_set():
            raise tasks.TaskCancelled(f"{self.kind} run {self.task_id} was cancelled")

    def complete(self, result: dict[str, Any]) -> None:
        with self.ctx.catalog.session() as session:
            tasks.complete_task(session, self.task_id, {"task_id": self.task_id, **result})


@contextmanager
def tracked_run(
    kind: str,
    dataset_id: str,
    options: StageOptions,
    *,
    task_id: str | None = None,
    parent_id: str | None = None,
) -> Iterator[TrackedRun]:
    """Create or take the task row, keep a heartbeat while the body runs, and record how it ended."""
    from prefect.exceptions import TerminationSignal
    from prefect.runtime import flow_run

    params = options.model_dump(mode="json")
    shard_size = getattr(options, "shard_size", None)
    ctx = open_context()
    run_id = str(flow_run.id) if flow_run.id else None
    with ctx.catalog.session() as session:
        if task_id is None:
            task_id = tasks.create_task(
                session,
                kind=kind,
                dataset_id=dataset_id,
                params=params,
                parent_id=parent_id,
                stale_after_s=ctx.settings.task_stale_after_s,
            ).id
        tasks.start_task(session, task_id, run_id=run_id)
    run = TrackedRun(ctx, task_id, kind, shard_size or ctx.settings.shard_size)
    stop = threading.Event()
    beat = threading.Thread(target=_heartbeat, args=(run, stop), name=f"heartbeat-{task_id[:8]}", daemon=True)
    beat.start()
    try:
        yield run
    except tasks.TaskCancelled:
        _end(ctx, task_id, tasks.TaskStatus.CANCELLED, "cancelled by the user")
        raise
    except KeyboardInterrupt:
        _end(ctx, task_id, tasks.TaskStatus.CANCELLED, "interrupted (Ctrl-C)")
        raise
    except TerminationSignal as exc:
        _end(
            ctx, task_id, tasks.TaskStatus.CRASHED, f"the run's process was terminated (signal {exc.signal})"
        )
        raise
    except BaseException as exc:
        _end(ctx, task_id, tasks.TaskStatus.FAILED, f"{exc.__class__.__name__}: {exc}")
        raise
    finally:
        stop.set()
        beat.join(timeout=5)


def _heartbeat(run: TrackedRun, stop: threading.Event) -> None:
    while not stop.wait(run.ctx.settings.task_heartbeat_s):
        try:
            with run.ctx.catalog.session() as session:
                if tasks.heartbeat(session, run.task_id) == tasks.TaskStatus.CANCELLED:
                    run.cancelled.set()
        except Exception:  # noqa: BLE001 - a missed beat is retried; the reaper tolerates a few
            log.warning("heartbeat of task %s failed", run.task_id, exc_info=True)


def _end(ctx: Context, task_id: str, status: tasks.TaskStatus, reason: str) -> None:
    try:
        with ctx.catalog.session() as session:
            tasks.end_task(session, task_id, status, reason)
    except Exception:  # noqa: BLE001 - the catalog may be what failed; the heartbeat reaper covers it
        log.exception("could not record that task %s ended %s", task_id, status)


def mark_crashed(_flow: Any, flow_run: Any, state: Any) -> None:
    """Prefect's crash hook: the run's task rows become CRASHED with Prefect's reason."""
    _end_orchestrator_run(str(flow_run.id), tasks.TaskStatus.CRASHED, state.message or "the flow run crashed")


def mark_cancelled(_flow: Any, flow_run: Any, state: Any) -> None:
    """Prefect's cancellation hook (cancelled from the Prefect UI or API)."""
    _end_orchestrator_run(
        str(flow_run.id), tasks.TaskStatus.CANCELLED, state.message or "cancelled in Prefect"
    )


def _end_orchestrator_run(run_id: str, status: tasks.TaskStatus, reason: str) -> None:
    ctx = open_context()
    with ctx.catalog.session() as session:
        tasks.end_runs_of(session, run_id, status, reason)


LIFECYCLE_HOOKS: dict[str, Any] = {"on_crashed": [mark_crashed], "on_cancellation": [mark_cancelled]}
"""Every flow declares these: `@flow(name=..., **LIFECYCLE_HOOKS)`."""
