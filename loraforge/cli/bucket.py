"""`loraforge bucket`: crop and resize every picture to its training bucket, around the faces it shows."""

from __future__ import annotations

import json
from typing import Any

import typer
from rich.table import Table

from loraforge.catalog import queries
from loraforge.cli.main import app, err_console, handle_errors, out_console
from loraforge.cli.runtime import cli_context, run_with_progress
from loraforge.errors import InvalidInput


@app.command()
@handle_errors
def bucket(
    dataset: str = typer.Option(..., "--dataset", "-d", help="Dataset whose pictures to process."),
    workspace: str = typer.Option(queries.DEFAULT_WORKSPACE, "--workspace", "-w"),
    target: str = typer.Option(None, "--target", "-t", help="sd15, sdxl or flux; default: the dataset's."),
    resolution: int = typer.Option(None, "--resolution", min=64, help="Training resolution (side of 1:1)."),
    step: int = typer.Option(None, "--step", min=8, help="Bucket sides are multiples of this."),
    min_reso: int = typer.Option(None, "--min-reso", min=8, help="Smallest bucket side."),
    max_reso: int = typer.Option(None, "--max-reso", min=8, help="Largest bucket side."),
    buckets: str = typer.Option(None, "--buckets", help='Own bucket list, e.g. "1024x1024,1152x896".'),
    max_upscale: float = typer.Option(
        1.5, "--max-upscale", min=1.0, help="Enlargement accepted before a smaller bucket is preferred."
    ),
    face_detector: str = typer.Option("opencv", "--face-detector", help="opencv or retinaface."),
    face_weights: str = typer.Option(None, "--face-weights", help="RetinaFace checkpoint file."),
    output_format: str = typer.Option("jpg", "--format", help="jpg or png."),
    batch_size: int = typer.Option(
        4, "--batch-size", min=1, help="Training batch size: smaller buckets are reported."
    ),
    shard_size: int = typer.Option(None, "--shard-size", min=1, help="Pictures per retryable task."),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
) -> None:
    """Choose each picture's bucket and crop box (keeping faces), render it at exactly the bucket size, and
    store it; pictures already done with the same parameters are skipped."""
    # Imported here: numpy and the imaging modules would slow the start of every other command.
    from loraforge.models.faces import detector_names
    from loraforge.stages.bucket import BucketOptions

    if target is not None and target not in queries.TARGET_MODELS:
        raise InvalidInput(f"target must be one of {', '.join(queries.TARGET_MODELS)}, not {target!r}")
    if output_format not in ("jpg", "png"):
        raise InvalidInput(f"format must be jpg or png, not {output_format!r}")
    if face_detector not in detector_names():
        raise InvalidInput(
            f"face detector must be one of {', '.join(detector_names())}, not {face_detector!r}"
        )
    ctx = cli_context()
    with ctx.catalog.session() as session:
        found = queries.find_dataset(session, dataset, workspace)
        dataset_id = found.id
    # Bad bucket options are a usage error, reported before any flow starts.
    BucketOptions(
        target=target or found.target_model,
        resolution=resolution,
        min_reso=min_reso,
        max_reso=max_reso,
        step=step,
        buckets=buckets,
    ).bucket_set()
    from flows.bucket import bucket_flow

    summary = run_with_progress(
        ctx,
        kind="bucket",
        label="bucket",
        dataset_id=dataset_id,
        show=not as_json,
        run=lambda task_id: bucket_flow(
            dataset=dataset,
            workspace=workspace,
            target=target,
            resolution=resolution,
            min_reso=min_reso,
            max_reso=max_reso,
            step=step,
            buckets=buckets,
            max_upscale=max_upscale,
            face_detector=face_detector,
            face_weights=face_weights,
            output_format=output_format,
            batch_size=batch_size,
            task_id=task_id,
            shard_size=shard_size,
        ),
    )
    if as_json:
        out_console.print_json(json.dumps(summary))
    else:
        print_bucket_summary(summary)


def print_bucket_summary(summary: dict[str, Any]) -> None:
    table = Table(title=f"buckets of {summary['dataset']} ({summary['target']})")
    table.add_column("bucket")
    table.add_column("images", justify="right")
    table.add_column("note")
    underfilled = summary.get("underfilled", {})
    for label, count in summary.get("images_per_bucket", {}).items():
        note = f"fewer than a batch of {summary['batch_size']}" if label in underfilled else ""
        table.add_row(label, str(count), note)
    out_console.print(table)
    out_console.print(
        f"processed {summary['processed']}, already done {summary['skipped']}, failed {summary['failed']}",
        highlight=False,
    )
    too_small = summary.get("too_small", [])
    if too_small:
        out_console.print(f"{len(too_small)} pictures are smaller than their bucket and get enlarged:")
        for entry in too_small:
            mark = " [yellow](beyond --max-upscale)[/yellow]" if entry["flagged"] else ""
            out_console.print(
                f"  {entry['filename']}: x{entry['upscale']:.2f} to {entry['bucket']}{mark}", highlight=False
            )
    for failure in summary["failures"]:
        err_console.print(f"  [red]failed[/red]: {failure['filename']}: {failure['reason']}", highlight=False)
