"""`loraforge tasks`: list a dataset's runs, cancel one, and mark runs whose process died as CRASHED."""

from __future__ import annotations

import typer
from rich.table import Table
from sqlalchemy import select

from loraforge import tasks
from loraforge.catalog.models import Task
from loraforge.catalog.names import DEFAULT_WORKSPACE
from services.cli.main import app, emit_json, handle_errors, out_console
from services.cli.runtime import cli_context, resolve_dataset

tasks_app = typer.Typer(
    help="Runs: list them, cancel one, reap the ones whose process died.", no_args_is_help=True
)
app.add_typer(tasks_app, name="tasks")


@tasks_app.command("list")
@handle_errors
def list_command(
    dataset: str = typer.Option(..., "--dataset", "-d"),
    workspace: str = typer.Option(DEFAULT_WORKSPACE, "--workspace", "-w"),
    limit: int = typer.Option(20, "--limit", min=1, max=500),
    as_json: bool = typer.Option(False, "--json", help="Print the rows as JSON."),
) -> None:
    """The dataset's latest runs, newest first; a run whose heartbeat stopped shows as CRASHED."""
    ctx = cli_context()
    dataset_id = resolve_dataset(ctx, dataset, workspace)
    with ctx.catalog.session() as session:
        tasks.reap(session, stale_after_s=ctx.settings.task_stale_after_s, dataset_id=dataset_id)
    with ctx.catalog.session() as session:
        rows = session.scalars(
            select(Task).where(Task.dataset_id == dataset_id).order_by(Task.created_at.desc()).limit(limit)
        ).all()
        listed = [
            {
                "id": row.id,
                "kind": row.kind,
                "status": row.status,
                "done": row.done,
                "total": row.total,
                "parent_id": row.parent_id,
                "created_at": row.created_at.isoformat(),
                "error": row.error,
            }
            for row in rows
        ]
    if as_json:
        emit_json(listed)
        return
    table = Table(title=f"runs of {dataset}")
    for column in ("id", "kind", "status", "progress", "created", "error"):
        table.add_column(column, overflow="fold")
    for row in listed:
        kind = ("  " if row["parent_id"] else "") + row["kind"]
        progress = f"{row['done']}/{row['total']}"
        table.add_row(row["id"], kind, row["status"], progress, row["created_at"][:19], row["error"] or "")
    out_console.print(table)


@tasks_app.command("cancel")
@handle_errors
def cancel_command(
    task_id: str = typer.Argument(..., help="The task id (see `loraforge tasks list`)."),
) -> None:
    """Cancel a pending or running task; the run stops at its next heartbeat and frees its dataset."""
    ctx = cli_context()
    with ctx.catalog.session() as session:
        task = tasks.cancel_task(session, task_id)
        out_console.print(f"{task.kind} run {task.id} cancelled", highlight=False)


@tasks_app.command("reap")
@handle_errors
def reap_command() -> None:
    """Mark CRASHED every running task whose heartbeat stopped (its process was killed)."""
    ctx = cli_context()
    with ctx.catalog.session() as session:
        reaped = tasks.reap(session, stale_after_s=ctx.settings.task_stale_after_s)
    out_console.print(f"{len(reaped)} crashed run(s) marked: {', '.join(reaped) or 'none'}", highlight=False)
