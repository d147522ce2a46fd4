"""`loraforge caption` (a model, an endpoint or a template captions a dataset) and `loraforge captions`."""

from __future__ import annotations

from typing import Any

import typer
from rich.table import Table

from loraforge.catalog import queries
from loraforge.config import get_settings
from loraforge.stages.context import Context, open_context
from loraforge.stages.options import CaptionOptions
from services.cli.main import app, emit_json, err_console, handle_errors, out_console
from services.cli.options import AS_JSON, WORKSPACE, dataset_param, options_command
from services.cli.runtime import cli_context, resolve_dataset, run_with_progress

captions_app = typer.Typer(
    help="Edit and list captions: manual edits are kept as history.", no_args_is_help=True
)
app.add_typer(captions_app, name="captions")


@options_command(
    app,
    CaptionOptions,
    name="caption",
    own=[dataset_param("Dataset whose pictures to caption."), WORKSPACE, AS_JSON],
)
def caption(options: CaptionOptions, *, dataset: str, workspace: str, as_json: bool) -> None:
    """Caption every pending or kept picture lacking this variant; re-running resumes where it stopped.

    The openai captioner's endpoint is LORAFORGE_CAPTION_ENDPOINT and its key OPENAI_API_KEY.
    """
    from loraforge.models.extras import check_model_options

    check_model_options(captioner=options.captioner)
    ctx = cli_context()
    dataset_id = resolve_dataset(ctx, dataset, workspace)
    from flows.caption import caption_flow
    from flows.orchestration import run_flow

    summary = run_with_progress(
        ctx,
        kind="caption",
        label=f"caption ({options.captioner})",
        dataset_id=dataset_id,
        params=options.model_dump(mode="json"),
        show=not as_json,
        run=lambda task_id: run_flow(caption_flow, dataset_id, options, task_id=task_id),
    )
    if as_json:
        emit_json(summary)
    else:
        print_caption_summary(summary)


def print_caption_summary(summary: dict[str, Any]) -> None:
    if summary.get("note"):
        err_console.print(summary["note"], highlight=False)
    print_trigger_warning(summary)
    out_console.print(
        f"variant {summary['variant']} ({summary['model']}): captioned {summary['captioned']}, "
        f"already captioned {summary['skipped']}, failed {summary['failed']}, "
        f"warnings {summary['warnings']}",
        highlight=False,
    )
    if summary["kept_manual"]:
        out_console.print(f"{summary['kept_manual']} manually edited captions stay active", highlight=False)
    for warning in summary["warning_details"]:
        err_console.print(
            f"  [yellow]warning[/yellow]: {warning['filename']}: {warning['warning']}",
            highlight=False,
            soft_wrap=True,
        )
    for failure in summary["failures"]:
        err_console.print(
            f"  [red]failed[/red]: {failure['filename']}: {failure['reason']}",
            highlight=False,
            soft_wrap=True,
        )


def _catalog() -> Context:
    ctx = open_context(get_settings())
    ctx.catalog.ensure_schema()
    return ctx


@captions_app.command("set")
@handle_errors
def set_command(
    image: str = typer.Argument(..., help="Filename as the report shows it, or the image id."),
    text: str = typer.Argument(..., help="The new caption, used as written."),
    dataset: str = typer.Option(..., "--dataset", "-d"),
    workspace: str = typer.Option(queries.DEFAULT_WORKSPACE, "--workspace", "-w"),
    variant: str = typer.Option(None, "--variant", help="Variant name; default the active caption's."),
) -> None:
    """Replace a picture's active caption by your text; the previous caption stays as history."""
    from loraforge.stages.caption import find_image, set_caption

    with _catalog().catalog.session() as session:
        dataset_id = queries.find_dataset(session, dataset, workspace).id
        row = set_caption(session, find_image(session, dataset_id, image), text, variant=variant)
        trigger = queries.find_dataset(session, dataset, workspace).trigger_word
        caption_text, variant_name = row.text, row.variant
    out_console.print(f"caption set ({variant_name}): {caption_text}", highlight=False, soft_wrap=True)
    if trigger and trigger.lower() not in caption_text.lower():
        err_console.print(f"[yellow]warning[/yellow]: the caption lacks the trigger word {trigger!r}")


@captions_app.command("replace")
@handle_errors
def replace_command(
    old: str = typer.Argument(..., help="Text to find (exact, case-sensitive)."),
    new: str = typer.Argument(..., help="Replacement text (may be empty)."),
    dataset: str = typer.Option(..., "--dataset", "-d"),
    workspace: str = typer.Option(queries.DEFAULT_WORKSPACE, "--workspace", "-w"),
    as_json: bool = typer.Option(False, "--json", help="Print the changes as JSON."),
) -> None:
    """Find and replace over the dataset's active captions; each changed caption becomes a new edited one."""
    from loraforge.stages.caption import replace_in_captions

    with _catalog().catalog.session() as session:
        dataset_id = queries.find_dataset(session, dataset, workspace).id
        changes = replace_in_captions(session, dataset_id, old, new)
    if as_json:
        emit_json([change.__dict__ for change in changes])
        return
    for change in changes:
        out_console.print(f"{change.filename}: {change.after}", highlight=False, soft_wrap=True)
    out_console.print(f"{len(changes)} captions changed", highlight=False)


@captions_app.command("list")
@handle_errors
def list_command(
    dataset: str = typer.Option(..., "--dataset", "-d"),
    workspace: str = typer.Option(queries.DEFAULT_WORKSPACE, "--workspace", "-w"),
    image: str = typer.Option(None, "--image", help="Only this picture (filename or image id)."),
    active_only: bool = typer.Option(False, "--active", help="Only the active caption of each picture."),
    as_json: bool = typer.Option(False, "--json", help="Print the rows as JSON."),
) -> None:
    """Every caption of the dataset with its variant, whether it is active, and whether it was edited."""
    from loraforge.stages.caption import caption_history, find_image

    with _catalog().catalog.session() as session:
        dataset_id = queries.find_dataset(session, dataset, workspace).id
        picture = find_image(session, dataset_id, image) if image else None
        rows = caption_history(session, dataset_id, picture)
    if active_only:
        rows = [row for row in rows if row["active"]]
    if as_json:
        emit_json(rows)
        return
    table = Table(title=f"captions of {dataset}")
    for column in ("filename", "variant", "active", "edited", "created", "text"):
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(
            row["filename"],
            row["variant"],
            "yes" if row["active"] else "",
            "yes" if row["edited"] else "",
            (row["created_at"] or "")[:19],
            row["text"],
        )
    out_console.print(table)


def print_trigger_warning(summary: dict[str, Any]) -> None:
    """A run without a trigger word (given now or saved on the dataset): a warning and a one-line hint."""
    from loraforge.stages.caption_setup import NO_TRIGGER_HINT, NO_TRIGGER_WARNING

    if not summary.get("trigger"):
        err_console.print(f"[yellow]warning:[/yellow] {NO_TRIGGER_WARNING}", highlight=False, soft_wrap=True)
        err_console.print(f"hint: {NO_TRIGGER_HINT}", highlight=False, markup=False, soft_wrap=True)
