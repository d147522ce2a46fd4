"""`loraforge bucket`: crop and resize every picture to its training bucket, around the faces it shows."""

from __future__ import annotations

from typing import Any

from rich.table import Table

from loraforge.stages.context import Context
from loraforge.stages.options import BucketOptions
from services.cli.main import app, emit_json, err_console, out_console
from services.cli.options import AS_JSON, WORKSPACE, dataset_param, options_command
from services.cli.runtime import cli_context, resolve_dataset, run_with_progress


@options_command(
    app,
    BucketOptions,
    name="bucket",
    own=[dataset_param("Dataset whose pictures to process."), WORKSPACE, AS_JSON],
)
def bucket(options: BucketOptions, *, dataset: str, workspace: str, as_json: bool) -> None:
    """Choose each picture's bucket and crop box (keeping faces), render it at exactly the bucket size, and
    store it; pictures already done with the same parameters are skipped."""
    from loraforge.models.extras import check_model_options

    check_model_options(face_detector=options.face_detector)
    ctx = cli_context()
    dataset_id = resolve_dataset(ctx, dataset, workspace)
    check_bucket_options(ctx, dataset_id, options)  # a usage error, reported before any flow starts
    from flows.bucket import bucket_flow
    from flows.orchestration import run_flow

    summary = run_with_progress(
        ctx,
        kind="bucket",
        label="bucket",
        dataset_id=dataset_id,
        params=options.model_dump(mode="json"),
        show=not as_json,
        run=lambda task_id: run_flow(bucket_flow, dataset_id, options, task_id=task_id),
    )
    if as_json:
        emit_json(summary)
    else:
        print_bucket_summary(summary, dataset)


def check_bucket_options(ctx: Context, dataset_id: str, options: BucketOptions) -> None:
    from loraforge.stages.bucket import bucket_config
    from loraforge.stages.datasets import get_dataset

    with ctx.catalog.session() as session:
        target = get_dataset(session, dataset_id).target_model
    bucket_config(options, target=target).bucket_set()


def print_bucket_summary(summary: dict[str, Any], dataset: str) -> None:
    table = Table(title=f"buckets of {dataset} ({summary['target']})")
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
            mark = (
                " [yellow](beyond --max-upscale: `run` leaves it out unless --allow-upscale)[/yellow]"
                if entry["flagged"]
                else ""
            )
            out_console.print(
                f"  {entry['filename']}: x{entry['upscale']:.2f} to {entry['bucket']}{mark}", highlight=False
            )
    for failure in summary["failures"]:
        err_console.print(f"  [red]failed[/red]: {failure['filename']}: {failure['reason']}", highlight=False)
