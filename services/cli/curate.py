"""`loraforge curate` and `loraforge review`: automatic decisions per picture, and a user's own."""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from loraforge.catalog import queries
from loraforge.errors import InvalidInput
from loraforge.stages.options import CurateOptions
from services.cli.main import app, emit_json, err_console, handle_errors, out_console
from services.cli.options import AS_JSON, KW, WORKSPACE, dataset_param, options_command
from services.cli.runtime import cli_context, resolve_dataset, run_with_progress

_PICTURE = {"exists": True, "dir_okay": False, "readable": True}
IDENTITY = [
    inspect.Parameter(
        "reference",
        KW,
        default=typer.Option(
            None,
            "--reference",
            "-r",
            help="Photos of the person of a person LoRA (`--reference a.jpg b.jpg`): pictures whose faces "
            "match none of them are rejected as other_person; saved on the dataset for later runs.",
            **_PICTURE,
        ),
        annotation=list[Path] | None,
    ),
    inspect.Parameter(
        "more_references",
        KW,
        default=typer.Argument(None, hidden=True, **_PICTURE),
        annotation=list[Path] | None,
    ),
    inspect.Parameter(
        "max_face_distance",
        KW,
        default=typer.Option(
            None,
            "--max-face-distance",
            min=0.2,
            max=1.0,
            help="Largest face distance still the same person (dlib, default 0.6; lower is stricter).",
        ),
        annotation=float | None,
    ),
    inspect.Parameter(
        "clear_references",
        KW,
        default=typer.Option(False, "--clear-references", help="Turn the identity filter off."),
        annotation=bool,
    ),
]


@options_command(
    app,
    CurateOptions,
    name="curate",
    own=[dataset_param("Dataset whose pictures to curate."), WORKSPACE, AS_JSON, *IDENTITY],
)
def curate(
    options: CurateOptions,
    *,
    dataset: str,
    workspace: str,
    as_json: bool,
    reference: list[Path] | None,
    more_references: list[Path] | None,
    max_face_distance: float | None,
    clear_references: bool,
) -> None:
    """Mark every picture kept, rejected (with the issues found) or duplicate (of the copy kept).

    Only pictures never measured are measured; decisions made with `loraforge review` stay as they are.
    """
    if more_references and not reference:
        raise InvalidInput(f"unexpected argument {more_references[0]}: reference photos follow --reference")
    references = [*(reference or []), *(more_references or [])]
    if clear_references and (references or max_face_distance is not None):
        raise InvalidInput("--clear-references cannot go with --reference or --max-face-distance")
    ctx = cli_context()
    dataset_id = resolve_dataset(ctx, dataset, workspace)
    if references or max_face_distance is not None or clear_references:
        set_identity(ctx, dataset_id, references, max_face_distance, clear=clear_references)
    from flows.curate import curate_flow
    from flows.orchestration import run_flow

    summary = run_with_progress(
        ctx,
        kind="curate",
        label="curate",
        dataset_id=dataset_id,
        params=options.model_dump(mode="json"),
        show=not as_json,
        run=lambda task_id: run_flow(curate_flow, dataset_id, options, task_id=task_id),
    )
    if as_json:
        emit_json(summary)
    else:
        print_curate_summary(summary, dataset)


def set_identity(
    ctx: Any, dataset_id: str, references: list[Path], max_distance: float | None, *, clear: bool
) -> None:
    """Read the reference photos here (the catalog gets their face vectors, never their paths)."""
    from loraforge.catalog.models import Dataset
    from loraforge.stages import curate_identity as identity

    pictures = [(path.name, path.read_bytes()) for path in references]
    embedder = identity.default_embedder() if pictures else None
    with ctx.catalog.session() as session:
        found = session.get(Dataset, dataset_id)
        if clear:
            identity.clear_references(found)
        elif embedder is not None:
            identity.set_reference_pictures(
                found, pictures, embedder, max_pixels=ctx.settings.max_image_pixels, max_distance=max_distance
            )
        elif max_distance is not None:
            identity.set_max_distance(found, max_distance)


def print_curate_summary(summary: dict[str, Any], dataset: str) -> None:
    from loraforge.stages.curate import summary_rows

    table = Table(title=f"curation of {dataset} ({summary['target']})")
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
    if summary.get("faces_scored"):
        out_console.print(
            f"faces compared with the reference faces: {summary['faces_scored']} pictures", highlight=False
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
        emit_json({"dataset": dataset, "changes": rows})
        return
    table = Table(title=f"review of {dataset}")
    for column in ("filename", "was", "now", "reason"):
        table.add_column(column, overflow="fold")
    for row in rows:
        now = row["status"] if row["manual"] else f"{row['status']} (next curate decides)"
        table.add_row(row["filename"], row["previous"], now, row["reason"] or "")
    out_console.print(table)
