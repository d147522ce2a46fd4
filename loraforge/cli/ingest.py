"""`loraforge ingest`: store the pictures of folders, zips, files and URL lists in a dataset."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.table import Table

from loraforge.catalog import queries
from loraforge.cli.main import app, err_console, handle_errors, out_console
from loraforge.cli.runtime import cli_context, run_with_progress
from loraforge.errors import InvalidInput


@app.command()
@handle_errors
def ingest(
    sources: list[str] = typer.Argument(..., help="Folders, zip files, image files, or .txt lists of URLs."),
    dataset: str = typer.Option(..., "--dataset", "-d", help="Dataset to add the pictures to."),
    workspace: str = typer.Option(queries.DEFAULT_WORKSPACE, "--workspace", "-w"),
    shard_size: int = typer.Option(None, "--shard-size", min=1, help="Pictures per retryable task."),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
) -> None:
    """Store every picture of the sources (recursively); the same bytes enter a dataset once."""
    check_sources(sources)
    ctx = cli_context()
    from flows.ingest import ingest_flow

    summary = run_with_progress(
        ctx,
        kind="ingest",
        label="ingest",
        dataset_id=None,
        show=not as_json,
        run=lambda task_id: ingest_flow(
            sources=sources, dataset=dataset, workspace=workspace, task_id=task_id, shard_size=shard_size
        ),
    )
    if as_json:
        out_console.print_json(json.dumps(summary))
    else:
        print_ingest_summary(summary)


def check_sources(sources: list[str]) -> None:
    for source in sources:
        if not source.startswith(("http://", "https://")) and not Path(source).expanduser().exists():
            raise InvalidInput(f"source not found: {source}")


def print_ingest_summary(summary: dict) -> None:
    table = Table(title=f"ingest into {summary['dataset']}", show_header=False)
    for label, key in (
        ("found", "found"),
        ("added", "added"),
        ("exact duplicates skipped", "exact_duplicates"),
        ("already in dataset", "already_present"),
        ("failed", "failed"),
    ):
        table.add_row(label, str(summary[key]))
    out_console.print(table)
    for dup in summary["duplicate_files"]:
        err_console.print(
            f"  duplicate: {dup['filename']} = {dup['duplicate_of']}", highlight=False, soft_wrap=True
        )
    for failure in summary["failures"]:
        err_console.print(
            f"  [red]failed[/red]: {failure['filename']}: {failure['reason']}",
            highlight=False,
            soft_wrap=True,
        )
