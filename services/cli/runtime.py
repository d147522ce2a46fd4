"""Run a flow from the CLI with a live progress bar fed by the catalog's tasks table."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

if TYPE_CHECKING:
    from loraforge.stages.context import Context


def cli_context() -> Context:
    from loraforge.config import get_settings
    from loraforge.stages.context import open_context

    ctx = open_context(get_settings())
    ctx.catalog.ensure_schema()
    from flows import configure_prefect

    configure_prefect(ctx.settings)
    return ctx


def run_with_progress(
    ctx: Context,
    *,
    kind: str,
    label: str,
    dataset_id: str,
    params: dict[str, Any],
    run: Callable[[str], Any],
    show: bool = True,
) -> Any:
    """Create the task row (refused when the dataset is busy), run `run(task_id)` here, draw its progress."""
    task_id = create_run(ctx, kind=kind, dataset_id=dataset_id, params=params)
    if not show:
        return run(task_id)
    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        transient=False,
    )
    bar = progress.add_task(label, total=None)
    from loraforge.catalog.models import Task

    def refresh() -> None:
        with ctx.catalog.session() as session:
            row = session.get(Task, task_id)
            if row is not None and row.total:
                progress.update(bar, total=row.total, completed=row.done)

    with progress, _polling(refresh):
        return run(task_id)


def run_with_stage_bars(
    ctx: Context, *, dataset_id: str, params: dict[str, Any], run: Callable[[str], Any], show: bool = True
) -> Any:
    """Like run_with_progress, with one bar per stage task the build creates under its own."""
    build_id = create_run(ctx, kind="build", dataset_id=dataset_id, params=params)
    if not show:
        return run(build_id)
    progress = Progress(
        TextColumn("[bold]{task.description:<8}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()
    )
    bars: dict[str, Any] = {}

    from loraforge import tasks

    def refresh() -> None:
        with ctx.catalog.session() as session:
            for row in tasks.children(session, build_id):
                if row.id not in bars:
                    bars[row.id] = progress.add_task(row.kind, total=None)
                total = row.total or (1 if row.status == "COMPLETED" else None)
                done = row.total if row.status == "COMPLETED" else row.done
                progress.update(bars[row.id], total=total, completed=done or 0)

    with progress, _polling(refresh):
        return run(build_id)


def create_run(ctx: Context, *, kind: str, dataset_id: str, params: dict[str, Any]) -> str:
    from loraforge import tasks

    with ctx.catalog.session() as session:
        return tasks.create_task(
            session,
            kind=kind,
            dataset_id=dataset_id,
            params=params,
            stale_after_s=ctx.settings.task_stale_after_s,
        ).id


@contextmanager
def _polling(refresh: Callable[[], None], interval_s: float = 0.4) -> Iterator[None]:
    stop = threading.Event()

    def poll() -> None:
        while not stop.wait(interval_s):
            try:
                refresh()
            except Exception:  # noqa: BLE001 - a progress bar must never fail the run
                pass

    poller = threading.Thread(target=poll, daemon=True)
    poller.start()
    try:
        yield
    finally:
        stop.set()
        poller.join(timeout=2)
        try:
            refresh()
        except Exception:  # noqa: BLE001
            pass


def resolve_dataset(ctx: Context, name: str, workspace: str, *, create: bool = False, **fields: Any) -> str:
    """The dataset's id, looked up once per command (created when `create`)."""
    from loraforge.stages.datasets import ensure_dataset, find_dataset

    with ctx.catalog.session() as session:
        if create:
            return ensure_dataset(session, name, workspace, **fields).id
        return find_dataset(session, name, workspace).id
