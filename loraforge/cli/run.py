"""`loraforge run`: the main job, from a folder of photos to a trainer-ready dataset in one command."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from loraforge.catalog import queries
from loraforge.cli.ingest import check_sources
from loraforge.cli.main import app, err_console, handle_errors, out_console
from loraforge.cli.runtime import cli_context, run_with_stage_bars


@app.command()
@handle_errors
def run(
    sources: list[str] = typer.Argument(..., help="Folders, zip files, image files, or .txt lists of URLs."),
    dataset: str = typer.Option(..., "--dataset", "-d", help="Dataset name (created if new)."),
    workspace: str = typer.Option(queries.DEFAULT_WORKSPACE, "--workspace", "-w"),
    trigger: str = typer.Option(
        None, "--trigger", help="Trigger word put in every caption, e.g. 'ohwx woman'."
    ),
    class_word: str = typer.Option(None, "--class-word", help="Class word after the trigger, e.g. 'woman'."),
    target: str = typer.Option("sdxl", "--target", help="Model the LoRA is for: sd15, sdxl or flux."),
    captioner: str = typer.Option(
        "auto",
        "--captioner",
        help="auto (a local model if found, else template), blip, git, florence2, openai, template.",
    ),
    model: str = typer.Option(None, "--model", help="Captioning model: hub id or local folder."),
    template: str = typer.Option(None, "--template", help="Template for --captioner template."),
    caption_prompt: str = typer.Option(None, "--caption-prompt", help="Prompt or task for the captioner."),
    endpoint: str = typer.Option(
        None, "--endpoint", help="OpenAI-compatible endpoint for --captioner openai."
    ),
    caption_batch_size: int = typer.Option(
        None, "--caption-batch-size", min=1, help="Pictures per model call."
    ),
    resolution: int = typer.Option(
        None, "--resolution", min=64, help="Training resolution (default per target)."
    ),
    face_detector: str = typer.Option(
        "opencv", "--face-detector", help="opencv (no download) or retinaface."
    ),
    max_upscale: float = typer.Option(None, "--max-upscale", min=1.0, help="Largest allowed upscale factor."),
    export_format: str = typer.Option(
        "kohya", "--format", "-f", help="kohya, ai-toolkit, onetrainer, simpletuner, hf, replicate."
    ),
    out: Path = typer.Option(None, "--out", "-o", help="Where to write the dataset (folder, or .zip)."),
    repeats: int = typer.Option(None, "--repeats", min=0, help="Repeats per image (kohya folder prefix)."),
    as_zip: bool = typer.Option(False, "--zip", help="Also write a zip of the export."),
    strict: bool = typer.Option(False, "--strict", help="Refuse to export when a validation check fails."),
    shard_size: int = typer.Option(None, "--shard-size", min=1, help="Pictures per retryable task."),
    as_json: bool = typer.Option(False, "--json", help="Print the final summary as JSON."),
) -> None:
    """Ingest, curate, caption, bucket and export a dataset in one go. Running it again resumes."""
    check_sources(sources)
    if target not in queries.TARGET_MODELS:
        raise typer.BadParameter(f"must be one of {', '.join(queries.TARGET_MODELS)}", param_hint="--target")
    ctx = cli_context()
    with ctx.catalog.session() as session:
        dataset_id = queries.get_or_create_dataset(
            session, dataset, workspace, trigger_word=trigger, class_word=class_word, target_model=target
        ).id
    from flows.build_dataset import build_dataset_flow

    summary = run_with_stage_bars(
        ctx,
        dataset_id=dataset_id,
        show=not as_json,
        run=lambda task_id: build_dataset_flow(
            sources=sources,
            dataset=dataset,
            workspace=workspace,
            trigger=trigger,
            class_word=class_word,
            target=target,
            captioner=captioner,
            model=model,
            template=template,
            caption_prompt=caption_prompt,
            endpoint=endpoint,
            caption_batch_size=caption_batch_size,
            resolution=resolution,
            face_detector=face_detector,
            max_upscale=max_upscale,
            export_format=export_format,
            out=str(out) if out else None,
            repeats=repeats,
            as_zip=as_zip,
            strict=strict,
            shard_size=shard_size,
            task_id=task_id,
        ),
    )
    if as_json:
        print(json.dumps(summary, indent=2, default=str))
    else:
        print_summary(summary)


def print_summary(summary: dict[str, Any]) -> None:
    for note in summary.get("notes", []):
        err_console.print(f"note: {note}", highlight=False, soft_wrap=True)
    table = Table(title=f"dataset {summary['dataset']}", show_header=False)
    rows = [
        ("images found", summary["found"]),
        ("added", summary["added"]),
        ("failed to ingest", summary["failed_to_ingest"]),
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
    if summary.get("written_to"):
        out_console.print(f"dataset written to [bold]{summary['written_to']}[/bold]", soft_wrap=True)
