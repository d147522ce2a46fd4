"""`loraforge caption` (a model, an endpoint or a template captions a dataset) and `loraforge captions`."""

from __future__ import annotations

import json
import os
from typing import Any

import typer
from rich.table import Table

from loraforge.catalog import queries
from loraforge.cli.main import app, err_console, handle_errors, out_console
from loraforge.cli.runtime import cli_context, run_with_progress
from loraforge.config import get_settings
from loraforge.errors import InvalidInput
from loraforge.stages.context import Context, open_context

captions_app = typer.Typer(
    help="Edit and list captions: manual edits are kept as history.", no_args_is_help=True
)
app.add_typer(captions_app, name="captions")


@app.command()
@handle_errors
def caption(
    dataset: str = typer.Option(..., "--dataset", "-d", help="Dataset whose pictures to caption."),
    workspace: str = typer.Option(queries.DEFAULT_WORKSPACE, "--workspace", "-w"),
    captioner: str = typer.Option(
        None,
        "--captioner",
        "-c",
        help="florence2, blip, git, openai or template; default: a model found locally, else template.",
    ),
    model: str = typer.Option(
        None, "--model", "-m", help="Hub id or local folder (or the endpoint's model)."
    ),
    trigger: str = typer.Option(None, "--trigger", help="Trigger word; saved on the dataset."),
    class_word: str = typer.Option(None, "--class-word", help="Class word after the trigger; saved too."),
    template: str = typer.Option(
        None, "--template", help='Template captioner text, e.g. "photo of {trigger}".'
    ),
    prompt: str = typer.Option(None, "--prompt", help="Model prompt or task (<MORE_DETAILED_CAPTION>)."),
    variant: str = typer.Option(
        None, "--variant", help="Name of this caption variant; default the captioner."
    ),
    endpoint: str = typer.Option(None, "--endpoint", help="OpenAI-compatible base URL, e.g. http://host/v1."),
    api_key: str = typer.Option(None, "--api-key", envvar="OPENAI_API_KEY", help="Endpoint API key."),
    prefix: str = typer.Option("", "--prefix", help="Text put before every caption."),
    suffix: str = typer.Option("", "--suffix", help="Text put after every caption."),
    placement: str = typer.Option("front", "--placement", help="Trigger at the front or the end."),
    batch_size: int = typer.Option(None, "--batch-size", min=1, help="Pictures per model call."),
    pool_size: int = typer.Option(None, "--pool-size", min=1, help="Model actors (copies of the model)."),
    num_gpus: float = typer.Option(None, "--num-gpus", min=0.0, help="GPUs per actor; 0.5 shares one GPU."),
    shard_size: int = typer.Option(None, "--shard-size", min=1, help="Pictures per retryable task."),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
) -> None:
    """Caption every pending or kept picture lacking this variant; re-running resumes where it stopped."""
    if placement not in ("front", "end"):
        raise InvalidInput(f"--placement must be front or end, not {placement!r}")
    if api_key:
        # Through the environment, not the flow's parameters: Prefect stores those where anyone can read them.
        os.environ["OPENAI_API_KEY"] = api_key
    ctx = cli_context()
    if captioner is None:
        from loraforge.stages.caption import default_captioner

        captioner, found_model, reason = default_captioner(ctx.settings)
        model = model or found_model
        err_console.print(reason, highlight=False)
    with ctx.catalog.session() as session:
        dataset_id = queries.find_dataset(session, dataset, workspace).id
    from flows.caption import caption_flow

    summary = run_with_progress(
        ctx,
        kind="caption",
        label=f"caption ({captioner})",
        dataset_id=dataset_id,
        show=not as_json,
        run=lambda task_id: caption_flow(
            dataset=dataset,
            workspace=workspace,
            captioner=captioner,
            model=model,
            trigger=trigger,
            class_word=class_word,
            template=template,
            prompt=prompt,
            variant=variant,
            endpoint=endpoint,
            prefix=prefix,
            suffix=suffix,
            placement=placement,
            batch_size=batch_size,
            pool_size=pool_size,
            num_gpus=num_gpus,
            task_id=task_id,
            shard_size=shard_size,
        ),
    )
    if as_json:
        out_console.print_json(json.dumps(summary))
    else:
        print_caption_summary(summary)


def print_caption_summary(summary: dict[str, Any]) -> None:
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
        out_console.print_json(json.dumps([change.__dict__ for change in changes]))
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
        out_console.print_json(json.dumps(rows))
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
