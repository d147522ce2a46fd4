"""`loraforge report`: what the catalog holds for a dataset, as a table or JSON."""

from __future__ import annotations

import typer
from rich.table import Table

from loraforge.catalog import queries
from loraforge.config import get_settings
from loraforge.stages.context import open_context
from loraforge.stages.report import dataset_report
from services.cli.main import app, emit_json, handle_errors, out_console


@app.command()
@handle_errors
def report(
    dataset: str = typer.Option(..., "--dataset", "-d"),
    workspace: str = typer.Option(queries.DEFAULT_WORKSPACE, "--workspace", "-w"),
    as_json: bool = typer.Option(False, "--json", help="Print the full report as JSON."),
) -> None:
    """List a dataset's images with their status, issues, captions and buckets."""
    ctx = open_context(get_settings())
    with ctx.catalog.session() as session:
        data = dataset_report(session, queries.find_dataset(session, dataset, workspace))
    if as_json:
        emit_json(data)
        return
    table = Table(title=f"{data['dataset']}: {len(data['images'])} images {data['counts']}")
    for column in ("filename", "size", "status", "reason", "bucket", "caption"):
        table.add_column(column, overflow="fold")
    for image in data["images"]:
        table.add_row(
            image["filename"],
            f"{image['width']}x{image['height']}",
            image["status"],
            image["status_reason"] or "",
            image["bucket"] or "",
            (image["caption"] or "")[:60],
        )
    out_console.print(table)


@app.command()
@handle_errors
def datasets(
    workspace: str = typer.Option(None, "--workspace", "-w", help="Only this workspace (default: all)."),
    as_json: bool = typer.Option(False, "--json", help="Print the list as JSON."),
) -> None:
    """List the datasets with their trigger word, target and pictures per status."""
    from loraforge.captioning.policy import trigger_phrase
    from loraforge.stages.datasets import list_datasets

    ctx = open_context(get_settings())
    with ctx.catalog.session() as session:
        rows = list_datasets(session, workspace)
    if as_json:
        emit_json(rows)
        return
    table = Table(title=f"{len(rows)} datasets")
    for column in ("dataset", "workspace", "trigger", "target", "pictures", "by status"):
        table.add_column(column, overflow="fold")
    for row in rows:
        trigger = trigger_phrase(row["trigger_word"], row["class_word"]) or row["class_word"] or ""
        statuses = ", ".join(f"{status} {count}" for status, count in row["by_status"].items())
        table.add_row(
            row["name"], row["workspace"], trigger, row["target_model"] or "", str(row["images"]), statuses
        )
    out_console.print(table)
