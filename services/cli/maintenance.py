"""`loraforge maintenance` (the scheduled flows, on demand) and `loraforge sources` (watched folders)."""

from __future__ import annotations

from pathlib import Path

import typer

from loraforge import maintenance
from loraforge.catalog.names import DEFAULT_WORKSPACE
from services.cli.main import app, emit_json, err_console, handle_errors, out_console
from services.cli.runtime import cli_context

maintenance_app = typer.Typer(
    help="Run a scheduled maintenance job now (`loraforge worker` runs them on their schedules).",
    no_args_is_help=True,
)
app.add_typer(maintenance_app, name="maintenance")
sources_app = typer.Typer(
    help="Folders a dataset watches: the source-sync job re-ingests them.", no_args_is_help=True
)
app.add_typer(sources_app, name="sources")


@maintenance_app.command("integrity")
@handle_errors
def integrity(
    dry_run: bool = typer.Option(False, "--dry-run", help="Report orphan objects; remove nothing."),
    sample: int = typer.Option(
        None, "--sample", min=0, help="Originals to re-hash (LORAFORGE_INTEGRITY_SAMPLE)."
    ),
    grace_s: float = typer.Option(
        None, "--grace-s", min=0, help="Orphans younger than this stay (LORAFORGE_ORPHAN_GRACE_S)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
) -> None:
    """Check every catalog row's object exists and a sample of originals hash right; remove old orphans.

    Exits 1 when an object is missing or corrupt, naming it.
    """
    ctx = cli_context()
    report = maintenance.check_integrity_now(ctx, dry_run=dry_run, sample=sample, grace_s=grace_s)
    if as_json:
        emit_json(report.as_dict())
    else:
        out_console.print(
            f"checked {report.rows_checked} rows against {report.objects_listed} objects; "
            f"re-hashed {report.hashed} originals"
        )
        verb = "would remove" if dry_run else "removed"
        out_console.print(
            f"orphans: {verb} {len(report.orphans)}, kept {report.young_orphans} within the grace period"
        )
        for key in report.orphans:
            out_console.print(f"  {key}", highlight=False)
    if not report.ok:
        err_console.print(f"[red]error:[/red] {report.problem_summary()}", highlight=False, soft_wrap=True)
        raise typer.Exit(1)


@maintenance_app.command("sync-sources")
@handle_errors
def sync_sources() -> None:
    """Re-ingest every watched folder now; only new pictures are added."""
    cli_context()
    from flows.maintenance import sync_sources_flow
    from flows.orchestration import run_flow

    result = run_flow(sync_sources_flow)
    emit_json(result)


@maintenance_app.command("reap")
@handle_errors
def reap() -> None:
    """Mark CRASHED every run whose process died (the same as `loraforge tasks reap`, for every dataset)."""
    cli_context()
    from flows.maintenance import reap_stale_tasks_flow
    from flows.orchestration import run_flow

    emit_json(run_flow(reap_stale_tasks_flow))


@sources_app.command("watch")
@handle_errors
def watch(
    folders: list[Path] = typer.Argument(..., help="Folders on this machine (the worker's, when scheduled)."),
    dataset: str = typer.Option(..., "--dataset", "-d"),
    workspace: str = typer.Option(DEFAULT_WORKSPACE, "--workspace", "-w"),
) -> None:
    """Have the source-sync job re-ingest these folders into the dataset (created if new)."""
    from loraforge.stages.datasets import ensure_dataset

    ctx = cli_context()
    with ctx.catalog.session() as session:
        watched = maintenance.watch(ensure_dataset(session, dataset, workspace), folders)
    out_console.print(f"{dataset} watches: {', '.join(watched)}", highlight=False)


@sources_app.command("unwatch")
@handle_errors
def unwatch(
    folders: list[Path] = typer.Argument(...),
    dataset: str = typer.Option(..., "--dataset", "-d"),
    workspace: str = typer.Option(DEFAULT_WORKSPACE, "--workspace", "-w"),
) -> None:
    """Stop syncing these folders; what was ingested from them stays."""
    from loraforge.stages.datasets import find_dataset

    ctx = cli_context()
    with ctx.catalog.session() as session:
        watched = maintenance.unwatch(find_dataset(session, dataset, workspace), folders)
    out_console.print(f"{dataset} watches: {', '.join(watched) or 'nothing'}", highlight=False)


@sources_app.command("list")
@handle_errors
def list_watched(as_json: bool = typer.Option(False, "--json")) -> None:
    """Every dataset that watches folders, with its folders."""
    from loraforge.stages.datasets import get_dataset

    ctx = cli_context()
    with ctx.catalog.session() as session:
        watched = [
            {"dataset": get_dataset(session, dataset_id).name, "dataset_id": dataset_id, "folders": folders}
            for dataset_id, folders in maintenance.datasets_with_watched_sources(session)
        ]
    if as_json:
        emit_json(watched)
        return
    for row in watched:
        out_console.print(f"{row['dataset']}: {', '.join(row['folders'])}", highlight=False)
