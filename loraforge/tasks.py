"""The task lifecycle, in one place: PENDING -> RUNNING -> COMPLETED, FAILED, CANCELLED or CRASHED.

A task row is what the CLI, the API and the dashboard show of a run. Rules kept here:
- one writing run per dataset at a time: a second top-level run on a dataset is refused (Conflict, 409);
  a partial unique index in the catalog makes the rule hold between processes too;
- a running task writes a heartbeat; one whose heartbeat is older than the stale limit is marked CRASHED
  (its process was killed), which also frees its dataset; on the host that ran it, a dead owner process is
  noticed at once;
- cancelling marks the row at once; the run sees it at its next heartbeat or shard and stops;
- a finished row is never reopened: a late COMPLETED cannot overwrite CANCELLED or CRASHED.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from loraforge.catalog.models import Task
from loraforge.errors import Conflict, LoraForgeError, NotFound


class TaskStatus(StrEnum):
    PENDING = "PENDING"
    RUNNING = "RUNNING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"
    CRASHED = "CRASHED"


ACTIVE = (TaskStatus.PENDING, TaskStatus.RUNNING)
FINISHED = (TaskStatus.COMPLETED, TaskStatus.FAILED, TaskStatus.CANCELLED, TaskStatus.CRASHED)


class TaskCancelled(LoraForgeError):
    """The task was cancelled while it ran; the run stops at the next safe point."""


def now() -> datetime:
    return datetime.now(UTC)


def get_task(session: Session, task_id: str) -> Task:
    task = session.get(Task, task_id)
    if task is None:
        raise NotFound(f"task {task_id} not found")
    return task


def create_task(
    session: Session,
    *,
    kind: str,
    dataset_id: str | None,
    params: dict[str, Any] | None = None,
    parent_id: str | None = None,
    stale_after_s: float | None = None,
) -> Task:
    """A PENDING task row; Conflict when another top-level run is active on the dataset."""
    if dataset_id is not None and parent_id is None:
        if stale_after_s is not None:
            reap(session, stale_after_s=stale_after_s, dataset_id=dataset_id)
        else:
            reap_dead_owners(session, dataset_id=dataset_id)
        busy = active_run(session, dataset_id)
        if busy is not None:
            raise busy_error(busy)
    task = Task(
        kind=kind,
        dataset_id=dataset_id,
        status=TaskStatus.PENDING,
        total=0,
        params=params or {},
        parent_id=parent_id,
    )
    try:
        with session.begin_nested():
            session.add(task)
            session.flush()
    except IntegrityError:  # another process took the dataset between our check and our insert
        busy = active_run(session, dataset_id) if dataset_id else None
        raise busy_error(busy) from None
    return task


def busy_error(task: Task | None) -> Conflict:
    if task is None:
        return Conflict("another run is active on this dataset")
    return Conflict(
        f"dataset is busy: {task.kind} run {task.id} is {task.status.lower()}; "
        f"wait for it or cancel it (loraforge tasks cancel {task.id})"
    )


def active_run(session: Session, dataset_id: str) -> Task | None:
    """The top-level run holding the dataset, if any."""
    query = select(Task).where(
        Task.dataset_id == dataset_id, Task.parent_id.is_(None), Task.status.in_(tuple(ACTIVE))
    )
    return session.scalars(query.limit(1)).first()


def start_task(session: Session, task_id: str, *, total: int = 0, run_id: str | None = None) -> Task:
    """PENDING -> RUNNING; TaskCancelled when it was cancelled before it started."""
    task = get_task(session, task_id)
    if task.status in FINISHED:
        raise TaskCancelled(f"task {task_id} is already {task.status.lower()}")
    task.status, task.total, task.owner = TaskStatus.RUNNING, total, this_process()
    task.started_at = task.heartbeat_at = now()
    if run_id:
        task.orchestrator_run_id = run_id
    return task


def set_total(session: Session, task_id: str, total: int) -> None:
    get_task(session, task_id).total = total


def set_done(session: Session, task_id: str, done: int) -> TaskStatus:
    """Record absolute progress; returns the row's status so the caller notices a cancellation."""
    task = get_task(session, task_id)
    task.done = min(done, task.total) if task.total else done
    task.progress = task.done / task.total if task.total else 0.0
    task.heartbeat_at = now()
    return TaskStatus(task.status)


def add_progress(session: Session, task_id: str, done_delta: int) -> None:
    task = get_task(session, task_id)
    task.done = min(task.done + done_delta, task.total) if task.total else task.done + done_delta
    task.progress = task.done / task.total if task.total else 1.0


def heartbeat(session: Session, task_id: str) -> TaskStatus:
    """The run is alive; returns the row's status (CANCELLED tells the run to stop).

    A row that is gone (its dataset was deleted) is CANCELLED too: the run has nothing left to work for.
    """
    task = session.get(Task, task_id)
    if task is None:
        return TaskStatus.CANCELLED
    if task.status in ACTIVE:
        task.heartbeat_at = now()
    return TaskStatus(task.status)


def complete_task(session: Session, task_id: str, result: dict[str, Any] | None = None) -> None:
    task = get_task(session, task_id)
    if task.status in FINISHED:
        return
    task.status, task.result, task.error = TaskStatus.COMPLETED, result, None
    task.finished_at = now()
    task.done, task.progress = task.total, 1.0


def end_task(session: Session, task_id: str, status: TaskStatus, reason: str) -> bool:
    """Finish an active task as FAILED, CANCELLED or CRASHED with its reason; False if already finished."""
    task = session.get(Task, task_id)
    if task is None or task.status in FINISHED:
        return False
    task.status, task.error, task.finished_at = status, reason[:2000], now()
    for child in session.scalars(
        select(Task).where(Task.parent_id == task_id, Task.status.in_(tuple(ACTIVE)))
    ):
        child.status, child.error, child.finished_at = status, reason[:2000], now()
    return True


def cancel_task(session: Session, task_id: str) -> Task:
    """Cancel a pending or running task; Conflict when it has already finished."""
    task = get_task(session, task_id)
    if task.status in FINISHED:
        raise Conflict(f"task {task_id} has already finished ({task.status.lower()})")
    end_task(session, task_id, TaskStatus.CANCELLED, "cancelled by the user")
    return task


def end_runs_of(session: Session, run_id: str, status: TaskStatus, reason: str) -> list[str]:
    """Finish the active tasks an orchestrator run owns (its crash and cancellation hooks call this)."""
    rows = session.scalars(
        select(Task).where(Task.orchestrator_run_id == run_id, Task.status.in_(tuple(ACTIVE)))
    ).all()
    return [row.id for row in rows if end_task(session, row.id, status, reason)]


def reap_stale(session: Session, *, stale_after_s: float, dataset_id: str | None = None) -> list[str]:
    """Mark CRASHED every running task whose heartbeat stopped more than `stale_after_s` ago."""
    query = select(Task).where(Task.status == TaskStatus.RUNNING, Task.parent_id.is_(None))
    if dataset_id is not None:
        query = query.where(Task.dataset_id == dataset_id)
    limit = now() - timedelta(seconds=stale_after_s)
    reaped = []
    for task in session.scalars(query).all():
        last = _aware(task.heartbeat_at or task.started_at or task.created_at)
        if last < limit:
            reason = f"the run stopped sending heartbeats at {last:%Y-%m-%d %H:%M:%S} UTC (its process died)"
            if end_task(session, task.id, TaskStatus.CRASHED, reason):
                reaped.append(task.id)
    return reaped


def reap(session: Session, *, stale_after_s: float, dataset_id: str | None = None) -> list[str]:
    """Mark CRASHED every running task known dead: its process gone from this host, or silent too long."""
    return reap_dead_owners(session, dataset_id=dataset_id) + reap_stale(
        session, stale_after_s=stale_after_s, dataset_id=dataset_id
    )


def this_process() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def reap_dead_owners(session: Session, *, dataset_id: str | None = None) -> list[str]:
    """Mark CRASHED the running tasks owned by a process of this host that no longer exists.

    A killed CLI run is known dead at once on its own machine; elsewhere the heartbeat limit decides.
    """
    host = socket.gethostname()
    query = select(Task).where(Task.status == TaskStatus.RUNNING, Task.parent_id.is_(None))
    if dataset_id is not None:
        query = query.where(Task.dataset_id == dataset_id)
    reaped = []
    for task in session.scalars(query).all():
        owner_host, _, pid = (task.owner or "").rpartition(":")
        if owner_host == host and pid.isdigit() and not _alive(int(pid)):
            if end_task(
                session, task.id, TaskStatus.CRASHED, f"its process {pid} on {host} is gone (killed?)"
            ):
                reaped.append(task.id)
    return reaped


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def children(session: Session, task_id: str) -> Sequence[Task]:
    return session.scalars(select(Task).where(Task.parent_id == task_id).order_by(Task.created_at)).all()


def _aware(moment: datetime) -> datetime:
    # SQLite hands back naive datetimes; every time we store is UTC.
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
