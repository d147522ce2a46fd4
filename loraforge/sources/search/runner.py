"""Run a search: ask each provider page after page from its saved cursor, filter and dedupe the candidates,
download the chosen ones (downloader), ingest them through the normal pipeline, and link provenance.

Every failure stays with its provider (unknown, missing key, licence filter it can never pass, timeout,
rate limit): its line in the outcome says why, and the other providers go on.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import select

from loraforge.catalog.models import SearchCandidate
from loraforge.errors import InvalidInput, LoraForgeError
from loraforge.sources.search import records
from loraforge.sources.search.base import Candidate, SearchTerms
from loraforge.sources.search.downloader import api_client, download_candidates
from loraforge.sources.search.records import Status
from loraforge.sources.search.registry import api_key, get_provider
from loraforge.sources.search.request import (
    Context,
    Ingest,
    Progress,
    ProviderOutcome,
    SearchOutcome,
    SearchRequest,
)
from loraforge.storage.keys import upload_prefix

MAX_PAGES_PER_RUN = 50
"""A query whose results all fail the filters stops after this many pages (the cursor keeps the place)."""


def find_candidates(
    ctx: Context, dataset_id: str, request: SearchRequest, *, progress: Progress | None = None
) -> SearchOutcome:
    """Page through each provider until `limit` candidates wait for this query; save them and the cursors."""
    with ctx.catalog.session() as session:
        query_id = records.save_query(session, dataset_id, request.query, request.params()).id
    outcome = SearchOutcome(query_id, {name: ProviderOutcome(name) for name in request.providers})
    for name, line in outcome.providers.items():
        try:
            outcome.candidate_ids += _search_provider(
                ctx, dataset_id, query_id, name, request, line, progress
            )
        except LoraForgeError as exc:
            line.error = str(exc)
    return outcome


def _search_provider(
    ctx: Context,
    dataset_id: str,
    query_id: str,
    name: str,
    request: SearchRequest,
    line: ProviderOutcome,
    progress: Progress | None,
) -> list[str]:
    provider = get_provider(name)
    key = api_key(ctx.settings, name)
    if provider.needs_key and key is None:
        raise InvalidInput(f"{name} needs a key: set LORAFORGE_{name.upper()}_API_KEY")
    if request.licences is not None and not provider.gives_licence:
        raise InvalidInput(
            f"{name} gives no licence, so the licence filter ({', '.join(sorted(request.licences))}) "
            "would refuse every picture: search it without --licence"
        )
    client = api_client(ctx, name, key=key, interval_s=provider.min_interval_s, purpose="api")
    terms = SearchTerms(request.query, page_size=min(request.limit, 100), licences=request.licences)
    with ctx.catalog.session() as session:
        cursor, exhausted = records.load_cursor(session, query_id, name)
        waiting = [row.id for row in records.pending_candidates(session, query_id, name, request.limit)]
    line.exhausted = exhausted
    pages = 0
    while len(waiting) < request.limit and not line.exhausted and pages < MAX_PAGES_PER_RUN:
        try:
            page = provider.page(client, terms, cursor)
        except LoraForgeError as exc:  # this provider stops; what it gave so far is still taken
            line.error = str(exc)
            break
        pages += 1
        with ctx.catalog.session() as session:
            query = records.get_query(session, dataset_id, query_id)
            ids, url_hashes = records.seen_keys(session, query_id, name)
            for candidate in page.candidates:
                line.found += 1
                if candidate.provider_id in ids or records.url_hash(candidate.file_url) in url_hashes:
                    line.already_seen += 1
                    continue
                ids.add(candidate.provider_id)
                url_hashes.add(records.url_hash(candidate.file_url))
                refusal = refusal_reason(candidate, request)
                if refusal is not None:
                    kind, reason = refusal
                    line.refused[kind] += 1
                    records.add_candidate(session, query, candidate, status=Status.REFUSED, reason=reason)
                    continue
                row = records.add_candidate(session, query, candidate, status=Status.FOUND)
                session.flush()
                line.new += 1
                waiting.append(row.id)
                if progress is not None:
                    progress(name, "search", 1)
            cursor = page.next_cursor
            records.save_cursor(session, query_id, name, cursor)
        line.exhausted = cursor is None
    return waiting[: request.limit]


def refusal_reason(candidate: Candidate, request: SearchRequest) -> tuple[str, str] | None:
    """(licence|rating|size, why) when the candidate fails the request's filters; None when it passes."""
    if request.licences is not None and candidate.licence not in request.licences:
        shown = "licence unknown" if candidate.licence == "unknown" else candidate.licence
        return "licence", f"{shown} is not among {', '.join(sorted(request.licences))}"
    rating = candidate.rating
    if request.ratings is not None and rating is not None and rating not in request.ratings:
        return "rating", f"rated {rating.value}"
    if candidate.width and candidate.height and min(candidate.width, candidate.height) < request.min_side:
        return "size", f"{candidate.width}x{candidate.height} is under {request.min_side} px a side"
    return None


def run_search(
    ctx: Context,
    dataset_id: str,
    request: SearchRequest,
    *,
    ingest: Ingest,
    progress: Progress | None = None,
) -> SearchOutcome:
    """Find, download, ingest through the normal pipeline, and store each added picture's provenance."""
    outcome = find_candidates(ctx, dataset_id, request, progress=progress)
    return _ingest_candidates(ctx, dataset_id, outcome, ingest=ingest, progress=progress)


def add_candidates(
    ctx: Context,
    dataset_id: str,
    query_id: str,
    candidate_ids: Sequence[str],
    *,
    ingest: Ingest,
    progress: Progress | None = None,
) -> SearchOutcome:
    """Add the candidates a client picked from a preview (the API's add route)."""
    with ctx.catalog.session() as session:
        query = records.get_query(session, dataset_id, query_id)
        rows = records.picked_candidates(session, query, candidate_ids)
        providers = sorted({row.provider for row in rows})
        waiting = [row.id for row in rows if row.status in (Status.FOUND, Status.FAILED)]
    outcome = SearchOutcome(query_id, {name: ProviderOutcome(name) for name in providers}, waiting)
    return _ingest_candidates(ctx, dataset_id, outcome, ingest=ingest, progress=progress)


def _ingest_candidates(
    ctx: Context, dataset_id: str, outcome: SearchOutcome, *, ingest: Ingest, progress: Progress | None
) -> SearchOutcome:
    batch = uuid.uuid4().hex  # an upload batch name, as ingest expects
    staged = download_candidates(
        ctx, dataset_id, outcome.candidate_ids, batch=batch, lines=outcome.providers, progress=progress
    )
    outcome.batch = batch
    outcome.candidate_ids = staged
    if not staged:
        return outcome
    try:
        outcome.ingest = ingest(batch)
    except BaseException:
        # Not ingested (the dataset busy, the run failed): the pictures wait for the next run, not lost.
        _put_back(ctx, dataset_id, batch, staged)
        raise
    with ctx.catalog.session() as session:
        records.record_provenance(session, dataset_id, staged)
        rows = session.execute(
            select(SearchCandidate.provider, SearchCandidate.status).where(SearchCandidate.id.in_(staged))
        ).all()
    for provider, status in rows:
        line = outcome.providers.setdefault(provider, ProviderOutcome(provider))
        if status == Status.ADDED:
            line.added += 1
        else:
            line.failed += 1
    return outcome


def _put_back(ctx: Context, dataset_id: str, batch: str, candidate_ids: Sequence[str]) -> None:
    with ctx.catalog.session() as session:
        for row in session.scalars(
            select(SearchCandidate).where(SearchCandidate.id.in_(list(candidate_ids)))
        ):
            row.status, row.reason = Status.FOUND, "downloaded, not ingested: tried again on the next run"
    try:
        for info in list(ctx.store.list(upload_prefix(dataset_id, batch))):
            ctx.store.delete(info.key)
    except LoraForgeError:  # the integrity check removes what stays behind once it is old
        pass


def sync_saved_searches(ctx: Context, *, ingest_for: Callable[[str], Ingest]) -> dict[str, Any]:
    """Re-run the saved queries of every dataset that opted in (`search --sync on`): the source-sync job.

    `ingest_for(dataset_id)` gives the ingest to run for that dataset. A dataset whose ingest fails (busy)
    is reported and tried on the next tick.
    """
    with ctx.catalog.session() as session:
        todo = [
            (dataset_id, query.text, dict(query.params))
            for dataset_id in records.datasets_syncing_searches(session)
            for query in records.saved_queries(session, dataset_id)
        ]
    synced: dict[str, Any] = {}
    failed: dict[str, str] = {}
    for dataset_id, text, params in todo:
        try:
            request = SearchRequest.from_params(text, params)
            result = run_search(ctx, dataset_id, request, ingest=ingest_for(dataset_id))
        except LoraForgeError as exc:
            failed[f"{dataset_id}:{text}"] = str(exc)
            continue
        synced[f"{dataset_id}:{text}"] = result.to_dict()
    return {"synced": synced, "failed": failed}
