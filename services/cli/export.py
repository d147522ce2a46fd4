"""`loraforge export` writes a new dataset version; `loraforge exports` lists, downloads and compares them."""

from __future__ import annotations

import inspect
import json
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from loraforge.catalog import queries
from loraforge.config import get_settings
from loraforge.errors import InvalidInput
from loraforge.stages.context import open_context
from loraforge.stages.datasets import get_dataset
from loraforge.stages.options import ExportOptions
from services.cli.main import app, emit_json, err_console, handle_errors, out_console
from services.cli.options import (
    AS_JSON,
    OVERWRITE,
    WORKSPACE,
    dataset_param,
    options_command,
    out_param,
)
from services.cli.runtime import cli_context, resolve_dataset, run_with_progress

exports_app = typer.Typer(help="A dataset's export versions: list, download and compare them.")
app.add_typer(exports_app, name="exports")

WORKSPACE_OPTION = typer.Option(queries.DEFAULT_WORKSPACE, "--workspace", "-w")


OUT = out_param("Folder for the folder form, or a .zip path for the archive alone.")
RELATIVE_PATHS = inspect.Parameter(
    "relative_paths",
    inspect.Parameter.KEYWORD_ONLY,
    default=typer.Option(
        False,
        "--relative-paths",
        help="Keep the --out folder's config paths relative to it (to move it elsewhere) instead of naming "
        "its absolute path; the stored version's are always relative. Same as --option relative_paths=true.",
    ),
    annotation=bool,
)


@options_command(
    app,
    ExportOptions,
    name="export",
    own=[dataset_param("Dataset to export."), OUT, OVERWRITE, RELATIVE_PATHS, WORKSPACE, AS_JSON],
)
def export(
    options: ExportOptions,
    *,
    dataset: str,
    out: str | None,
    overwrite: bool,
    relative_paths: bool,
    workspace: str,
    as_json: bool,
) -> None:
    """Export a new immutable version of the dataset, stored with its manifest; always downloadable."""
    from loraforge.stages.export import ExportRequest, check_out, preview_export

    if relative_paths:
        # An ExportSpec field, carried in the options so every client (and the flow) sees the same request.
        options = options.model_copy(update={"options": {**options.options, "relative_paths": True}})
    check_out(out, zip=options.zip, overwrite=overwrite)
    request = ExportRequest(
        format=options.format,
        repeats=options.repeats,
        include_rejected=options.include_rejected,
        # An ExportSpec field: the flag, unless --option caption_extension=... says otherwise.
        options={"caption_extension": options.caption_extension, **options.options},
        max_upscale=options.max_upscale,
    )
    ctx = cli_context()
    dataset_id = resolve_dataset(ctx, dataset, workspace)
    # Validate here first: the report reaches the user before any work, and a strict refusal starts no flow.
    try:
        with ctx.catalog.session() as session:
            report = preview_export(
                session, get_dataset(session, dataset_id), request, ctx.store, strict=options.strict
            )
    except InvalidInput as exc:
        err_console.print(str(exc), highlight=False, markup=False, soft_wrap=True)
        raise typer.Exit(1) from None
    if not as_json:
        err_console.print(report.summary(), highlight=False, markup=False, soft_wrap=True)
    from flows.export import export_flow
    from flows.orchestration import run_flow

    try:
        result = run_with_progress(
            ctx,
            kind="export",
            label=f"export {options.format}",
            dataset_id=dataset_id,
            params=options.model_dump(mode="json"),
            show=not as_json,
            run=lambda task_id: run_flow(
                export_flow, dataset_id, options, task_id=task_id, out=out, overwrite=overwrite
            ),
        )
    except InvalidInput as exc:
        if "\n" not in str(exc):
            raise
        # The catalog changed since the check above and the flow refused: show its whole report.
        err_console.print(str(exc), highlight=False, markup=False, soft_wrap=True)
        raise typer.Exit(1) from None
    if as_json:
        emit_json(result)
        return
    table = Table(title=f"export {result['export_id']} of {dataset} ({options.format})", show_header=False)
    for label, key in (
        ("images", "images"),
        ("files", "files"),
        ("bytes", "bytes"),
        ("stored", "object_key"),
    ):
        table.add_row(label, str(result[key]))
    for label, key in (("folder", "out_dir"), ("zip", "zip_path")):
        if result[key]:
            table.add_row(label, result[key])
    out_console.print(table)
    for skipped in result["left_out"]:
        out_console.print(f"not exported: {skipped['filename']}: {skipped['reason']}", highlight=False)


def parse_options(pairs: list[str]) -> dict[str, Any]:
    """KEY=VALUE pairs; values are read as JSON when they parse (numbers, booleans, lists), else as text."""
    options: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise InvalidInput(f"--option takes KEY=VALUE, not {pair!r}")
        try:
            options[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            options[key.strip()] = value
    return options


@exports_app.callback(invoke_without_command=True)
@handle_errors
def exports_main(
    typer_ctx: typer.Context,
    dataset: str = typer.Option(None, "--dataset", "-d", help="List this dataset's versions."),
    workspace: str = WORKSPACE_OPTION,
    include_all: bool = typer.Option(False, "--all", help="Also show pending and failed exports."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """`loraforge exports --dataset NAME` is `loraforge exports list --dataset NAME`."""
    if typer_ctx.invoked_subcommand is not None:
        return
    if dataset is None:
        out_console.print(typer_ctx.get_help())
        raise typer.Exit(2)
    show_versions(dataset, workspace, include_all=include_all, as_json=as_json)


@exports_app.command("list")
@handle_errors
def list_command(
    dataset: str = typer.Option(..., "--dataset", "-d"),
    workspace: str = WORKSPACE_OPTION,
    include_all: bool = typer.Option(False, "--all", help="Also show pending and failed exports."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """The dataset's export versions, oldest first (only completed ones unless --all)."""
    show_versions(dataset, workspace, include_all=include_all, as_json=as_json)


def show_versions(dataset: str, workspace: str, *, include_all: bool, as_json: bool) -> None:
    from loraforge.stages.export import list_exports

    ctx = open_context(get_settings())
    with ctx.catalog.session() as session:
        dataset_id = queries.find_dataset(session, dataset, workspace).id
        rows = [
            {"id": row.id, "created_at": row.created_at.isoformat(), "format": row.format,
             "status": row.status, "images": row.image_count, "bytes": row.bytes,
             "object_key": row.object_key}
            for row in list_exports(session, dataset_id, include_all=include_all)
        ]  # fmt: skip
    if as_json:
        emit_json(rows)
        return
    table = Table(title=f"exports of {dataset}")
    table.add_column("id", no_wrap=True)
    for column in ("created", "format", "status", "images", "bytes"):
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(row["id"], row["created_at"][:19], row["format"], row["status"], str(row["images"]),
                      str(row["bytes"]))  # fmt: skip
    out_console.print(table)


@exports_app.command("get")
@handle_errors
def get_command(
    export_id: str = typer.Argument(..., help="Export id (or a unique prefix of it)."),
    dataset: str = typer.Option(..., "--dataset", "-d"),
    out: Path = typer.Option(..., "--out", "-o", help="Where to write the zip."),
    manifest: Path = typer.Option(None, "--manifest", help="Also write the manifest JSON here."),
    workspace: str = WORKSPACE_OPTION,
) -> None:
    """Download a stored export exactly as it was written."""
    from loraforge.exporters import canonical_json
    from loraforge.stages.export import find_export

    ctx = open_context(get_settings())
    with ctx.catalog.session() as session:
        row = find_export(session, queries.find_dataset(session, dataset, workspace).id, export_id)
        key, manifest_data = row.object_key, row.manifest
    assert key is not None  # a COMPLETED row always has its object
    out.expanduser().parent.mkdir(parents=True, exist_ok=True)
    ctx.store.download(key, out.expanduser())
    if manifest is not None:
        manifest.expanduser().write_text(canonical_json(manifest_data or {}), encoding="utf-8")
    out_console.print(f"export {row.id} written to {out}", highlight=False)


@exports_app.command("diff")
@handle_errors
def diff_command(
    first: str = typer.Argument(..., help="Older export id (or unique prefix)."),
    second: str = typer.Argument(..., help="Newer export id (or unique prefix)."),
    dataset: str = typer.Option(..., "--dataset", "-d"),
    workspace: str = WORKSPACE_OPTION,
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """What changed from one version to another: files added, removed or changed, and settings."""
    from loraforge.exporters import diff_manifests
    from loraforge.stages.export import find_export

    ctx = open_context(get_settings())
    with ctx.catalog.session() as session:
        dataset_id = queries.find_dataset(session, dataset, workspace).id
        a, b = find_export(session, dataset_id, first), find_export(session, dataset_id, second)
        diff = diff_manifests(a.manifest or {}, b.manifest or {})
        names = (a.id, b.id)
    if as_json:
        payload = {"a": names[0], "b": names[1], "identical": diff.identical, "added": diff.added,
                   "removed": diff.removed, "changed": diff.changed,
                   "settings_changed": {k: list(v) for k, v in diff.settings_changed.items()}}  # fmt: skip
        emit_json(payload)
        return
    if diff.identical:
        out_console.print(f"identical: {names[0]} and {names[1]} hold the same files and settings")
        return
    out_console.print(f"{names[0]} -> {names[1]}:", highlight=False)
    for label, files in (("+", diff.added), ("-", diff.removed), ("~", diff.changed)):
        for name in files:
            out_console.print(f"  {label} {name}", highlight=False, markup=False)
    for key, (old, new) in diff.settings_changed.items():
        out_console.print(f"  setting {key}: {old!r} -> {new!r}", highlight=False, markup=False)
