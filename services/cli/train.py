"""`loraforge train` trains a LoRA on Replicate from a dataset; `loraforge trainings` follows and cancels.

The Replicate token is the `replicate` client's own REPLICATE_API_TOKEN variable: LoRA Forge never stores
or prints it.
"""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING, Any

import typer
from rich.table import Table

from loraforge.catalog.names import DEFAULT_WORKSPACE
from loraforge.training.options import TrainOptions
from services.cli.main import app, emit_json, err_console, handle_errors, out_console
from services.cli.options import AS_JSON, WORKSPACE, dataset_param, options_command
from services.cli.runtime import cli_context, resolve_dataset, run_with_progress

if TYPE_CHECKING:
    from loraforge.stages.context import Context

trainings_app = typer.Typer(
    help="Trainings on Replicate: list them, show one, read its logs, cancel it.", no_args_is_help=True
)
app.add_typer(trainings_app, name="trainings")

KW = inspect.Parameter.KEYWORD_ONLY
WAIT = inspect.Parameter(
    "wait",
    KW,
    default=typer.Option(
        False,
        "--wait",
        help="Follow the training until it ends and its weights are stored; exit 1 unless it succeeds.",
    ),
    annotation=bool,
)
POLL_INTERVAL = inspect.Parameter(
    "poll_interval",
    KW,
    default=typer.Option(10.0, "--poll-interval", min=0.1, help="Seconds between two polls with --wait."),
    annotation=float,
)


@options_command(
    app,
    TrainOptions,
    name="train",
    own=[dataset_param("Dataset to train on."), WORKSPACE, WAIT, POLL_INTERVAL, AS_JSON],
)
def train(
    options: TrainOptions, *, dataset: str, workspace: str, wait: bool, poll_interval: float, as_json: bool
) -> None:
    """Train a LoRA on Replicate: export the dataset, upload it, start the trainer (REPLICATE_API_TOKEN)."""
    from loraforge.training import records

    ctx = cli_context()
    dataset_id = resolve_dataset(ctx, dataset, workspace)
    started = start_training(ctx, dataset_id, options, show=not as_json)
    if not wait:
        if as_json:
            emit_json(started)
        else:
            print_started(started)
        return
    if not as_json:
        print_started(started)
    final = follow(ctx, started["training_id"], poll_interval_s=poll_interval, show=not as_json)
    if as_json:
        emit_json({"task_id": started["task_id"], **final})
    else:
        print_training(final)
    if final["status"] != records.TrainingStatus.SUCCEEDED:
        reason = final["error"] or "no reason given"
        err_console.print(
            f"[red]error:[/red] training {final['id']} {final['status'].lower()}: {reason}",
            highlight=False,
            soft_wrap=True,
        )
        raise typer.Exit(1)


def start_training(ctx: Context, dataset_id: str, options: TrainOptions, *, show: bool) -> dict[str, Any]:
    """Refuse a second training into the same destination and wrong inputs before any run is recorded,
    then run the train flow here (export, upload, start); returns its result."""
    from loraforge.stages.datasets import get_dataset
    from loraforge.training import provider, records, service

    with ctx.catalog.session() as session:
        records.refuse_if_active(session, dataset_id, options.destination)
        trigger_word = get_dataset(session, dataset_id).trigger_word
    service.plan_training(provider.replicate_client(), options, trigger_word=trigger_word)
    from flows.orchestration import run_flow
    from flows.train import train_flow

    result: dict[str, Any] = run_with_progress(
        ctx,
        kind="train",
        label=f"train {options.destination}",
        dataset_id=dataset_id,
        params=options.model_dump(mode="json"),
        show=show,
        run=lambda task_id: run_flow(train_flow, dataset_id, options, task_id=task_id),
    )
    return result


def follow(ctx: Context, training_id: str, *, poll_interval_s: float, show: bool) -> dict[str, Any]:
    """Poll until the training ends and its weights are stored, printing each change (unless `show` is off).

    Ctrl-C stops the waiting, not the training: it goes on at Replicate, and the sync keeps the row current.
    """
    from loraforge.training import service

    printed = 0

    def on_change(training: dict[str, Any]) -> None:
        nonlocal printed
        if not show:
            return
        logs = training["logs_tail"] or ""
        # The tail slides as logs grow: print what is new since the last poll, or the tail if it moved on.
        fresh = logs[printed:] if len(logs) >= printed else logs
        printed = len(logs)
        last = fresh.strip().splitlines()[-1] if fresh.strip() else ""
        err_console.print(
            f"{training['status'].lower():<10} {last}", highlight=False, markup=False, soft_wrap=True
        )

    try:
        return service.wait_for(ctx, training_id, poll_interval_s=poll_interval_s, on_change=on_change)
    except KeyboardInterrupt:
        err_console.print(
            f"stopped waiting; the training goes on at Replicate: loraforge trainings show {training_id}",
            highlight=False,
        )
        raise typer.Exit(130) from None


def print_started(started: dict[str, Any]) -> None:
    table = Table(title=f"training {started['training_id']}", show_header=False)
    for label, key in (
        ("status", "status"),
        ("destination", "destination"),
        ("trainer", "trainer_version"),
        ("Replicate id", "remote_id"),
        ("export", "export_id"),
        ("pictures", "images"),
    ):
        table.add_row(label, str(started[key]))
    out_console.print(table)
    out_console.print(f"follow it with: loraforge trainings show {started['training_id']}", highlight=False)


def print_training(training: dict[str, Any]) -> None:
    table = Table(title=f"training {training['id']}", show_header=False)
    for label, key in (
        ("status", "status"),
        ("destination", "destination"),
        ("trainer", "trainer_version"),
        ("Replicate id", "remote_id"),
        ("trained version", "output_version"),
        ("weights", "weights_key"),
        ("error", "error"),
        ("created", "created_at"),
    ):
        if training.get(key):
            table.add_row(label, str(training[key]))
    out_console.print(table)


def _refreshed(ctx: Context, reference: str) -> dict[str, Any]:
    """The training, brought up to date with Replicate first while it may still change."""
    from loraforge.training import records, service

    with ctx.catalog.session() as session:
        row = records.find_training(session, reference)
        training_id, settled = row.id, service.is_settled(records.as_dict(row))
    if not settled:
        try:
            return service.sync_training(ctx, training_id)
        except Exception as exc:  # noqa: BLE001 - show what the catalog has, and why it may be stale
            err_console.print(
                f"warning: could not refresh from Replicate: {exc}", highlight=False, soft_wrap=True
            )
    with ctx.catalog.session() as session:
        return records.as_dict(records.get_training(session, training_id))


@trainings_app.command("list")
@handle_errors
def list_command(
    dataset: str = typer.Option(..., "--dataset", "-d"),
    workspace: str = typer.Option(DEFAULT_WORKSPACE, "--workspace", "-w"),
    as_json: bool = typer.Option(False, "--json", help="Print the rows as JSON."),
) -> None:
    """The dataset's trainings, newest first, as the catalog has them."""
    from loraforge.training import records

    ctx = cli_context()
    dataset_id = resolve_dataset(ctx, dataset, workspace)
    with ctx.catalog.session() as session:
        rows = [records.as_dict(row) for row in records.list_trainings(session, dataset_id)]
    if as_json:
        emit_json(rows)
        return
    table = Table(title=f"trainings of {dataset}")
    for column in ("id", "status", "destination", "trained version", "created"):
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(
            row["id"],
            row["status"],
            row["destination"] or "",
            row["output_version"] or "",
            row["created_at"][:19],
        )
    out_console.print(table)


@trainings_app.command("show")
@handle_errors
def show_command(
    training: str = typer.Argument(..., help="Training id (or a unique prefix, or Replicate's id)."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """One training, refreshed from Replicate while it runs (its weights are stored once it succeeds)."""
    current = _refreshed(cli_context(), training)
    if as_json:
        emit_json(current)
    else:
        print_training(current)


@trainings_app.command("logs")
@handle_errors
def logs_command(
    training: str = typer.Argument(..., help="Training id (or a unique prefix, or Replicate's id)."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """The end of the training's log (refreshed from Replicate while it runs)."""
    current = _refreshed(cli_context(), training)
    if as_json:
        emit_json({"id": current["id"], "status": current["status"], "logs_tail": current["logs_tail"]})
        return
    out_console.print(current["logs_tail"] or "(no logs yet)", highlight=False, markup=False, soft_wrap=True)


@trainings_app.command("cancel")
@handle_errors
def cancel_command(
    training: str = typer.Argument(..., help="Training id (or a unique prefix, or Replicate's id)."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Cancel a running training at Replicate; its logs so far are kept."""
    from loraforge.training import records, service

    ctx = cli_context()
    with ctx.catalog.session() as session:
        training_id = records.find_training(session, training).id
    cancelled = service.cancel_training(ctx, training_id)
    if as_json:
        emit_json(cancelled)
        return
    out_console.print(f"training {cancelled['id']} {cancelled['status'].lower()}", highlight=False)
