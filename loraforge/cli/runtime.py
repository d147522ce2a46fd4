"""Run a flow from the CLI with a live progress bar fed by the catalog's tasks table."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from loraforge.catalog import queries
from loraforge.catalog.models import Task
from loraforge.config import get_settings
from loraforge.stages.context import Context, open_context


def cli_context() -> Context:
    ctx = open_context(get_settings())
    ctx.catalog.ensure_schema()
    from flows._common import configure_prefect

    configure_prefect(ctx.settings)
    return ctx


def run_with_progress(
    ctx: Context,
    *,
    kind: str,
    label: str,
    dataset_id: str | None,
    run: Callable[[str], Any],
    show: bool = True,
) -> Any:
    """Create the task row, run `run(task_id)` in this thread, and draw its progress from another."""
    with ctx.catalog.session() as session:
        task = queries.create_task(session, kind=kind, dataset_id=dataset_id, total=0, params={})
        task.status = "PENDING"
        task_id = task.id
    if not show:
        return run(task_id)
    stop = threading.Event()
    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        transient=False,
    )
    bar = progress.add_task(label, total=None)

    def poll() -> None:
        while not stop.wait(0.3):
            with ctx.catalog.session() as session:
                row = session.get(Task, task_id)
                if row is not None and row.total:
                    progress.update(bar, total=row.total, completed=row.done)

    poller = threading.Thread(target=poll, daemon=True)
    with progress:
        poller.start()
        try:
            result = run(task_id)
        finally:
            stop.set()
            poller.join(timeout=2)
        with ctx.catalog.session() as session:
            row = session.get(Task, task_id)
            if row is not None and row.total:
                progress.update(bar, total=row.total, completed=row.done)
    return result


def run_with_stage_bars(
    ctx: Context, *, dataset_id: str, run: Callable[[str], Any], show: bool = True
) -> Any:
    """Like run_with_progress, with one bar per stage task the run creates for the dataset."""
    from datetime import UTC, datetime

    from sqlalchemy import select

    started = datetime.now(UTC)
    with ctx.catalog.session() as session:
        task = queries.create_task(session, kind="build", dataset_id=dataset_id, total=0, params={})
        task.status = "PENDING"
        build_id = task.id
    if not show:
        return run(build_id)
    stop = threading.Event()
    progress = Progress(
        TextColumn("[bold]{task.description:<8}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()
    )
    bars: dict[str, Any] = {}

    def refresh() -> None:
        with ctx.catalog.session() as session:
            rows = session.scalars(
                select(Task)
                .where(Task.dataset_id == dataset_id, Task.created_at >= started, Task.id != build_id)
                .order_by(Task.created_at)
            ).all()
            for row in rows:
                if row.id not in bars:
                    bars[row.id] = progress.add_task(row.kind, total=None)
                total = row.total or (1 if row.status == "COMPLETED" else None)
                done = row.total if row.status == "COMPLETED" else row.done
                progress.update(bars[row.id], total=total, completed=done or 0)

    def poll() -> None:
        while not stop.wait(0.4):
            refresh()

    poller = threading.Thread(target=poll, daemon=True)
    with progress:
        poller.start()
        try:
            return run(build_id)
        finally:
            stop.set()
            poller.join(timeout=2)
            refresh()
