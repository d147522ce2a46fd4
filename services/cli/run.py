"""`loraforge run`: the main job, from a folder of photos to a trainer-ready dataset in one command."""

from __future__ import annotations

import inspect
from typing import Any

import typer
from pydantic import ValidationError
from rich.table import Table

from loraforge.errors import InvalidInput
from loraforge.models.extras import check_model_options
from loraforge.stages.options import BuildOptions
from loraforge.training.options import TrainOptions
from services.cli.caption import print_trigger_warning
from services.cli.ingest import check_sources
from services.cli.main import app, emit_json, err_console, out_console
from services.cli.options import (
    AS_JSON,
    OVERWRITE,
    WORKSPACE,
    dataset_param,
    options_command,
    out_param,
)
from services.cli.runtime import cli_context, resolve_dataset, run_with_stage_bars

OUT = out_param("Where to write the dataset (folder, or .zip).")
TRAIN = inspect.Parameter(
    "train",
    inspect.Parameter.KEYWORD_ONLY,
    default=typer.Option(
        None,
        "--train",
        metavar="OWNER/NAME",
        help="Then train a LoRA on Replicate into this model, as `loraforge train --destination` does.",
    ),
    annotation=str,
)


@options_command(
    app,
    BuildOptions,
    name="run",
    own=[dataset_param("Dataset name (created if new)."), OUT, OVERWRITE, TRAIN, WORKSPACE, AS_JSON],
    positional="sources",
    hidden=("upload_batch",),
)
def run(
    options: BuildOptions,
    *,
    dataset: str,
    out: str | None,
    overwrite: bool,
    train: str | None,
    workspace: str,
    as_json: bool,
) -> None:
    """Build a dataset in one go: ingest, curate, caption, bucket, export. Again: resumes, replaces --out."""
    from loraforge.stages.export import check_out

    # Everything a user typed is checked here, before any stage starts.
    check_sources(options.sources)
    check_model_options(captioner=options.captioner, face_detector=options.face_detector)
    check_out(out, zip=options.zip, overwrite=overwrite)
    training = train_options(train)
    ctx = cli_context()
    dataset_id = resolve_dataset(
        ctx,
        dataset,
        workspace,
        create=True,
        trigger=options.trigger,
        class_word=options.class_word,
        target=options.target,
    )
    from flows.build_dataset import build_dataset_flow
    from flows.orchestration import run_flow

    summary = run_with_stage_bars(
        ctx,
        dataset_id=dataset_id,
        params=options.model_dump(mode="json"),
        show=not as_json,
        run=lambda task_id: run_flow(
            build_dataset_flow, dataset_id, options, task_id=task_id, out=out, overwrite=overwrite
        ),
    )
    if not as_json:
        print_summary(summary)
    if training is not None:
        from services.cli.train import print_started, start_training

        started = start_training(ctx, dataset_id, training, show=not as_json)
        summary = {**summary, "training": started}
        if not as_json:
            print_started(started)
    if as_json:
        emit_json(summary)


def train_options(destination: str | None) -> TrainOptions | None:
    """`--train OWNER/NAME` as the train command's options; a bad name or no token is refused before the
    build, not after it."""
    if destination is None:
        return None
    try:
        options = TrainOptions(destination=destination)
    except ValidationError:
        raise InvalidInput(f"--train: a Replicate model name, owner/name, not {destination!r}") from None
    from loraforge.training.provider import replicate_client

    replicate_client()
    return options


def print_summary(summary: dict[str, Any]) -> None:
    for note in summary.get("notes", []):
        err_console.print(f"note: {note}", highlight=False, soft_wrap=True)
    print_trigger_warning(summary)
    table = Table(title=f"dataset {summary['dataset']}", show_header=False)
    rows = [
        ("images found", summary["found"]),
        ("added", summary["added"]),
        ("failed to ingest", summary["failed_to_ingest"]),
        ("exact copies skipped at ingest", summary["copies_skipped_at_ingest"]),
        ("duplicates", summary["duplicates"]),
        ("rejected", summary["rejected"]),
    ]
    rows += [(f"  rejected: {reason}", count) for reason, count in summary["rejected_by_reason"].items()]
    rows += [("captioned", summary["captioned"])]
    rows += [(f"  bucket {bucket}", count) for bucket, count in summary["per_bucket"].items()]
    rows += [("exported", summary["exported"]), ("export version", summary["export_id"])]
    for label, value in rows:
        table.add_row(label, "" if value is None else str(value))
    out_console.print(table)
    if summary["not_exported"]:
        out_console.print("not exported:", highlight=False)
    for skipped in summary["not_exported"]:
        out_console.print(f"  {skipped['filename']}: {skipped['reason']}", highlight=False, soft_wrap=True)
    if summary.get("written_to"):
        out_console.print(f"dataset written to [bold]{summary['written_to']}[/bold]", soft_wrap=True)
