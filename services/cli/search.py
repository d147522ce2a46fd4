"""`loraforge search`: find pictures with image-search providers, add them with their licence and source."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from loraforge.catalog.queries import DEFAULT_WORKSPACE
from loraforge.errors import InvalidInput
from loraforge.sources.search import Rating, SearchOutcome, SearchRequest, provider_status, run_search
from loraforge.sources.search import licences as licence_codes
from loraforge.sources.search.records import set_sync
from loraforge.sources.search.request import Progress as SearchProgress
from loraforge.stages.context import Context
from loraforge.stages.options import IngestOptions
from services.cli.main import app, emit_json, err_console, handle_errors, out_console
from services.cli.runtime import cli_context, resolve_dataset, run_with_progress

DEFAULT_PROVIDERS = "openverse,wikimedia"


@app.command("search")
@handle_errors
def search(
    query: str = typer.Argument(
        None, help='What to search for ("grace hopper", or booru tags "1girl solo").'
    ),
    dataset: str = typer.Option(
        None, "--dataset", "-d", help="Dataset to add the pictures to (created if new)."
    ),
    workspace: str = typer.Option(DEFAULT_WORKSPACE, "--workspace", "-w", help="Workspace."),
    provider: str = typer.Option(
        DEFAULT_PROVIDERS,
        "--provider",
        "-p",
        help="Providers, comma-separated (--list-providers shows them).",
    ),
    licence: str = typer.Option(
        None,
        "--licence",
        "--license",
        help=f"Licences to accept, comma-separated ({', '.join(licence_codes.CODES)}); "
        'pictures whose licence is unknown never pass. Default: any, flagged "licence unknown" in exports.',
    ),
    rating: str = typer.Option(
        "general",
        "--rating",
        help="Ratings to accept where a provider rates pictures: general, sensitive, questionable, "
        'explicit, comma-separated, or "any".',
    ),
    limit: int = typer.Option(
        50, "--limit", min=1, max=10_000, help="New pictures wanted from each provider."
    ),
    min_side: int = typer.Option(
        256, "--min-side", min=0, help="Refuse pictures with a shorter side below this."
    ),
    list_providers: bool = typer.Option(False, "--list-providers", help="Show the providers and exit."),
    sync: str = typer.Option(
        None, "--sync", help='"on": re-run this dataset\'s saved queries on the source-sync schedule; "off".'
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Search image providers and add what passes the filters to a dataset, through the normal ingest.

    The query is saved with the dataset: run it again and it continues where it stopped. Each picture keeps
    its provider, page, file URL, creator and licence; exports carry them in the manifest and ATTRIBUTION.md.
    """
    if list_providers:
        _show_providers(as_json)
        return
    if not dataset:
        raise InvalidInput("give --dataset (the dataset the pictures go to)")
    if sync is not None:
        _set_sync(dataset, workspace, sync)
        if not query:
            return
    if not query:
        raise InvalidInput('give a query, e.g. loraforge search "grace hopper" --dataset hopper')
    request = SearchRequest(
        query=query.strip(),
        providers=tuple(dict.fromkeys(p.strip().lower() for p in provider.split(",") if p.strip())),
        licences=licence_codes.parse_filter(licence.split(",")) if licence is not None else None,
        ratings=parse_ratings(rating),
        limit=limit,
        min_side=min_side,
    )
    ctx = cli_context()
    dataset_id = resolve_dataset(ctx, dataset, workspace, create=True)
    with _bars(request, show=not as_json) as (progress, bars_done):
        outcome = run_search(
            ctx,
            dataset_id,
            request,
            ingest=_ingest(ctx, dataset_id, as_json, before=bars_done),
            progress=progress,
        )
    if as_json:
        emit_json(outcome.to_dict())
    else:
        print_search_summary(outcome, request.query, dataset)
    if all(line.error and not line.found for line in outcome.providers.values()):  # none could be searched
        raise typer.Exit(1)


def parse_ratings(value: str) -> frozenset[Rating] | None:
    names = {part.strip().lower() for part in value.split(",") if part.strip()}
    if not names or "any" in names:
        return None
    known = {rating.value for rating in Rating}
    wrong = sorted(names - known)
    if wrong:
        raise InvalidInput(f"unknown rating(s) {', '.join(wrong)}: use {', '.join(sorted(known))} or any")
    return frozenset(Rating(name) for name in names)


def _ingest(ctx: Context, dataset_id: str, as_json: bool, *, before: Callable[[], None]) -> Any:
    from flows.ingest import ingest_flow
    from flows.orchestration import run_flow

    def ingest(batch: str) -> dict[str, Any]:
        before()  # one live display at a time: the search bars end where the ingest bar starts
        options = IngestOptions(upload_batch=batch)
        return run_with_progress(  # type: ignore[no-any-return]
            ctx,
            kind="ingest",
            label="ingest",
            dataset_id=dataset_id,
            params=options.model_dump(mode="json"),
            show=not as_json,
            run=lambda task_id: run_flow(ingest_flow, dataset_id, options, task_id=task_id),
        )

    return ingest


@contextmanager
def _bars(
    request: SearchRequest, *, show: bool
) -> Iterator[tuple[SearchProgress | None, Callable[[], None]]]:
    if not show:
        yield None, lambda: None
        return
    progress = Progress(
        TextColumn("[bold]{task.description:<20}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()
    )
    bars: dict[tuple[str, str], Any] = {}

    def advance(provider: str, step: str, n: int) -> None:
        key = (provider, step)
        if key not in bars:
            bars[key] = progress.add_task(f"{provider} {step}", total=request.limit)
        progress.advance(bars[key], n)

    def finish() -> None:
        # A provider that ran out before the limit ends its bars full, at what it gave.
        for task in progress.tasks:
            progress.update(task.id, total=task.completed)
        progress.stop()

    with progress:
        try:
            yield advance, finish
        finally:
            finish()


def print_search_summary(outcome: SearchOutcome, query: str, dataset: str) -> None:
    table = Table(title=f'search "{query}" into {dataset}')
    table.add_column("provider", no_wrap=True)
    for column in ("found", "new", "already\nseen", "refused\n(licence, rating, size)", "failed", "added"):
        table.add_column(column, justify="right")
    for line in outcome.providers.values():
        refused = line.refused
        table.add_row(
            line.provider,
            str(line.found),
            str(line.new),
            str(line.already_seen),
            f"{sum(refused.values())} ({refused['licence']}, {refused['rating']}, {refused['size']})",
            str(line.failed),
            str(line.added),
        )
    out_console.print(table)
    for line in outcome.providers.values():
        if line.error:
            err_console.print(f"  [red]{line.provider}[/red]: {line.error}", highlight=False, soft_wrap=True)
        elif line.exhausted:
            err_console.print(f"  {line.provider}: no more results for this query", highlight=False)


def _show_providers(as_json: bool) -> None:
    from loraforge.config import get_settings

    statuses = provider_status(get_settings())
    if as_json:
        emit_json([vars(status) for status in statuses])
        return
    table = Table(title="image-search providers")
    for column in ("provider", "configured", "licence", "address", "note"):
        table.add_column(column)
    for status in statuses:
        table.add_row(
            status.name,
            "yes" if status.configured else "no",
            "given" if status.gives_licence else "unknown",
            status.url,
            status.note,
        )
    out_console.print(table)


def _set_sync(dataset: str, workspace: str, value: str) -> None:
    if value not in ("on", "off"):
        raise InvalidInput(f'--sync takes "on" or "off", not {value!r}')
    from loraforge.stages.datasets import find_dataset

    ctx = cli_context()
    with ctx.catalog.session() as session:
        set_sync(find_dataset(session, dataset, workspace), value == "on")
    state = "re-runs its saved queries" if value == "on" else "no longer re-runs its saved queries"
    out_console.print(f"{dataset} {state} on the source-sync schedule", highlight=False)
