"""`loraforge curate` and `loraforge review`: automatic decisions per picture, and a user's own."""

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
def curate(
    dataset: str = typer.Option(..., "--dataset", "-d", help="Dataset whose pictures to curate."),
    workspace: str = typer.Option(queries.DEFAULT_WORKSPACE, "--workspace", "-w"),
    threshold: list[str] = typer.Option(
        None,
        "--threshold",
        help="CHECK=VALUE, e.g. blurry=0.6 (repeatable; scores 0..1, above 1 turns a check off). "
        "Saved with the dataset for later runs.",
    ),
    target: str = typer.Option(
        None, "--target", "-t", help="sd15, sdxl or flux: the resolution judged; default: the dataset's."
    ),
    clip_model: str = typer.Option(
        None,
        "--clip-model",
        help="MODEL:WEIGHTS of an open_clip model (checkpoint path or pretrained tag); its embeddings "
        "confirm near duplicates.",
    ),
    shard_size: int = typer.Option(None, "--shard-size", min=1, help="Pictures per retryable task."),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
) -> None:
    """Mark every picture kept, rejected (with the issues found) or duplicate (of the copy kept).

    Only pictures never measured are measured; decisions made with `loraforge review` stay as they are.
    """
    if target is not None and target not in queries.TARGET_MODELS:
        raise InvalidInput(f"target must be one of {', '.join(queries.TARGET_MODELS)}, not {target!r}")
    from loraforge.stages.curate import check_thresholds

    thresholds = check_thresholds(parse_thresholds(threshold or []))  # before the flow starts
    ctx = cli_context()
    with ctx.catalog.session() as session:
        dataset_id = queries.find_dataset(session, dataset, workspace).id
    from flows.curate import curate_flow

    summary = run_with_progress(
        ctx,
        kind="curate",
        label="curate",
        dataset_id=dataset_id,
        show=not as_json,
        run=lambda task_id: curate_flow(
            dataset=dataset,
            workspace=workspace,
            thresholds=thresholds or None,
            target=target,
            clip_model=clip_model,
            task_id=task_id,
            shard_size=shard_size,
        ),
    )
    if as_json:
        out_console.print_json(json.dumps(summary))
    else:
        print_curate_summary(summary)


def parse_thresholds(pairs: list[str]) -> dict[str, float]:
    """["blurry=0.6", ...] -> {"blurry": 0.6}; names are checked by the flow against the known checks."""
    out: dict[str, float] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        try:
            if not sep or not name.strip():
                raise ValueError
            out[name.strip()] = float(value)
        except ValueError:
            raise InvalidInput(f"--threshold takes CHECK=NUMBER, e.g. blurry=0.6, not {pair!r}") from None
    return out


def print_curate_summary(summary: dict[str, Any]) -> None:
    from flows.curate import summary_rows

    table = Table(title=f"curation of {summary['dataset']} ({summary['target']})")
    table.add_column("outcome")
    table.add_column("images", justify="right")
    for row in summary_rows(summary):
        table.add_row(row["outcome"], str(row["images"]))
    out_console.print(table)
    out_console.print(
        f"measured {summary['measured']}, already measured {summary['already_measured']}, "
        f"failed {summary['failed']}",
        highlight=False,
    )
    for failure in summary["failures"]:
        err_console.print(
            f"  [red]unreadable[/red]: {failure['filename']}: {failure['reason']}",
            highlight=False,
            soft_wrap=True,
        )


@app.command()
@handle_errors
def review(
    images: list[str] = typer.Argument(..., help="Pictures: filename as in the report, or image id."),
    dataset: str = typer.Option(..., "--dataset", "-d"),
    workspace: str = typer.Option(queries.DEFAULT_WORKSPACE, "--workspace", "-w"),
    keep: bool = typer.Option(False, "--keep", help="Keep these pictures."),
    reject: bool = typer.Option(False, "--reject", help="Reject these pictures."),
    auto: bool = typer.Option(False, "--auto", help="Let the next `curate` decide these pictures again."),
    reason: str = typer.Option(None, "--reason", help="Why, shown in the report."),
    as_json: bool = typer.Option(False, "--json", help="Print the changes as JSON."),
) -> None:
    """Keep or reject pictures by hand, e.g. `review -d alice --keep a.jpg b.jpg`; `curate` never undoes it.

    A kept picture leads its duplicate group: its near copies become its duplicates unless kept too.
    """
    if sum((keep, reject, auto)) != 1:
        raise InvalidInput("choose one of --keep, --reject or --auto")
    status = "kept" if keep else "rejected" if reject else "auto"
    from loraforge.config import get_settings
    from loraforge.stages.context import open_context
    from loraforge.stages.curate import review_images

    ctx = open_context(get_settings())
    with ctx.catalog.session() as session:
        found = queries.find_dataset(session, dataset, workspace)
        changes = review_images(session, found, images, status=status, reason=reason)
        rows = [
            {
                "id": c.image_id,
                "filename": c.filename,
                "status": c.status,
                "previous": c.previous,
                "reason": c.reason,
                "manual": status != "auto",
            }
            for c in changes
        ]
    if as_json:
        print(json.dumps({"dataset": dataset, "changes": rows}, indent=2))
        return
    table = Table(title=f"review of {dataset}")
    for column in ("filename", "was", "now", "reason"):
        table.add_column(column, overflow="fold")
    for row in rows:
        now = row["status"] if row["manual"] else f"{row['status']} (next curate decides)"
        table.add_row(row["filename"], row["previous"], now, row["reason"] or "")
    out_console.print(table)
