"""`loraforge ingest`: store the pictures of folders, zips, files and URL lists in a dataset."""

from __future__ import annotations

from collections.abc import Sequence

from rich.table import Table

from loraforge.stages.options import IngestOptions
from services.cli.main import app, emit_json, err_console, out_console
from services.cli.options import AS_JSON, WORKSPACE, dataset_param, options_command
from services.cli.runtime import cli_context, resolve_dataset, run_with_progress


@options_command(
    app,
    IngestOptions,
    name="ingest",
    own=[dataset_param("Dataset to add the pictures to (created if new)."), WORKSPACE, AS_JSON],
    positional="sources",
    hidden=("upload_batch",),
)
def ingest(options: IngestOptions, *, dataset: str, workspace: str, as_json: bool) -> None:
    """Store every picture of the sources (recursively); the same bytes enter a dataset once."""
    check_sources(options.sources)
    ctx = cli_context()
    dataset_id = resolve_dataset(ctx, dataset, workspace, create=True)
    from flows.ingest import ingest_flow
    from flows.orchestration import run_flow

    summary = run_with_progress(
        ctx,
        kind="ingest",
        label="ingest",
        dataset_id=dataset_id,
        params=options.model_dump(mode="json"),
        show=not as_json,
        run=lambda task_id: run_flow(ingest_flow, dataset_id, options, task_id=task_id),
    )
    if as_json:
        emit_json(summary)
    else:
        print_ingest_summary(summary, dataset)


def check_sources(sources: Sequence[str]) -> None:
    """Every local source exists and holds pictures, checked before the catalog is even opened."""
    from loraforge.config import get_settings
    from loraforge.sources.enumerate import check_sources as check_local_sources
    from loraforge.stages.context import source_limits

    check_local_sources(sources, source_limits(get_settings()))


def print_ingest_summary(summary: dict, dataset: str) -> None:
    table = Table(title=f"ingest into {dataset}", show_header=False)
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
