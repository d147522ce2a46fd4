"""Run a search: ask each provider page after page from its saved cursor, filter and dedupe the candidates,
download the chosen ones through the shared client, stage them for ingest, and link provenance afterwards.

Every failure stays with its provider (unknown, missing key, licence filter it can never pass, timeout,
rate limit): its row in the outcome says why, and the other providers go on.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from sqlalchemy import select

from loraforge.catalog.db import Catalog
from loraforge.catalog.models import SearchCandidate
from loraforge.config import Settings
from loraforge.errors import InvalidInput, LoraForgeError
from loraforge.imaging.decode import sniff_format
from loraforge.imaging.hashes import sha256_hex
from loraforge.sources.enumerate import SourceLimits
from loraforge.sources.search import records
from loraforge.sources.search.base import Candidate, Rating, SearchTerms
from loraforge.sources.search.http import ApiClient, ProviderError, user_agent
from loraforge.sources.search.records import Status
from loraforge.sources.search.registry import api_key, base_url, get_provider
from loraforge.storage import ObjectStore
from loraforge.storage.keys import upload_key


class Context(Protocol):
    """What a search needs of loraforge.stages.context.Context (sources sit below the stages)."""

    @property
    def settings(self) -> Settings: ...
    @property
    def catalog(self) -> Catalog: ...
    @property
    def store(self) -> ObjectStore: ...
    @property
    def source_limits(self) -> SourceLimits: ...


Progress = Callable[[str, str, int], None]
"""progress(provider, step, n): `n` more candidates found ("search") or downloaded ("download")."""
Ingest = Callable[[str], Mapping[str, Any]]
"""Ingest the staged upload batch with this name through the normal pipeline; its summary."""
MAX_PAGES_PER_RUN = 50
"""A query whose results all fail the filters stops after this many pages (the cursor keeps the place)."""
DOWNLOAD_INTERVAL_S = 0.25


@dataclass(frozen=True)
class SearchRequest:
    """What to search for: a query, the providers, and the filters its candidates must pass."""

    query: str
    providers: tuple[str, ...]
    licences: frozenset[str] | None = None
    """Licence codes allowed (None: any, "licence unknown" included)."""
    ratings: frozenset[Rating] | None = frozenset({Rating.GENERAL})
    """Ratings allowed where a provider gives one (None: any)."""
    limit: int = 50
    """New pictures wanted from each provider in this run."""
    min_side: int = 256
    """Pictures whose declared shorter side is smaller are refused (a LoRA needs at least 512 or so)."""

    def __post_init__(self) -> None:
        if not self.query.strip():
            raise InvalidInput("give a search query")
        if not self.providers:
            raise InvalidInput("give at least one provider")
        if self.limit < 1:
            raise InvalidInput("limit must be at least 1")

    def params(self) -> dict[str, Any]:
        return {
            "providers": list(self.providers),
            "licences": sorted(self.licences) if self.licences is not None else None,
            "ratings": sorted(r.value for r in self.ratings) if self.ratings is not None else None,
            "limit": self.limit,
            "min_side": self.min_side,
        }

    @classmethod
    def from_params(cls, query: str, params: Mapping[str, Any]) -> SearchRequest:
        ratings = params.get("ratings")
        licence_codes = params.get("licences")
        return cls(
            query=query,
            providers=tuple(params.get("providers") or ()),
            licences=frozenset(licence_codes) if licence_codes is not None else None,
            ratings=frozenset(Rating(r) for r in ratings) if ratings is not None else None,
            limit=int(params.get("limit") or 50),
            min_side=int(params.get("min_side") or 0),
        )


@dataclass
class ProviderOutcome:
    """One provider's line of the summary table."""

    provider: str
    found: int = 0
    new: int = 0
    already_seen: int = 0
    refused: dict[str, int] = field(default_factory=lambda: {"licence": 0, "rating": 0, "size": 0})
    failed: int = 0
    added: int = 0
    exhausted: bool = False
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class SearchOutcome:
    query_id: str | None
    providers: dict[str, ProviderOutcome]
    candidate_ids: list[str] = field(default_factory=list)
    """Candidates found and waiting (a preview), or downloaded and staged (a run)."""
    batch: str | None = None
    ingest: Mapping[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "query_id": self.query_id,
            "providers": [outcome.to_dict() for outcome in self.providers.values()],
            "ingest": dict(self.ingest) if self.ingest is not None else None,
        }


def find_candidates(
    ctx: Context, dataset_id: str, request: SearchRequest, *, progress: Progress | None = None
) -> SearchOutcome:
    """Page through each provider until `limit` candidates wait for this query; save them and the cursors."""
    with ctx.catalog.session() as session:
        query_id = records.save_query(session, dataset_id, request.query, request.params()).id
    outcome = SearchOutcome(query_id, {name: ProviderOutcome(name) for name in request.providers})
    for name, line in outcome.providers.items():
        try:
            outcome.candidate_ids += _search_provider(ctx, query_id, name, request, line, progress)
        except LoraForgeError as exc:
            line.error = str(exc)
    return outcome


def _search_provider(
    ctx: Context,
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
    client = api_client(ctx, name, key=key, interval_s=provider.min_interval_s)
    terms = SearchTerms(request.query, page_size=min(request.limit, 100), licences=request.licences)
    with ctx.catalog.session() as session:
        cursor, exhausted = records.load_cursor(session, query_id, name)
        waiting = [row.id for row in records.pending_candidates(session, query_id, name, request.limit)]
    line.exhausted = exhausted
    pages = 0
    while len(waiting) < request.limit and not line.exhausted and pages < MAX_PAGES_PER_RUN:
        page = provider.page(client, terms, cursor)  # a ProviderError ends this provider; found ones stay
        pages += 1
        with ctx.catalog.session() as session:
            query = records.get_query(session, _dataset_of(ctx, query_id), query_id)
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


def _dataset_of(ctx: Context, query_id: str) -> str:
    from loraforge.catalog.models import SearchQuery

    with ctx.catalog.session() as session:
        query = session.get(SearchQuery, query_id)
        assert query is not None
        return query.dataset_id


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


def api_client(ctx: Context, name: str, *, key: str | None, interval_s: float) -> ApiClient:
    settings = ctx.settings
    return ApiClient(
        provider=name,
        base_url=base_url(settings, name),
        limits=ctx.source_limits,
        user_agent=user_agent(settings.search_contact),
        min_interval_s=_interval(settings, interval_s),
        max_retries=settings.search_max_retries,
        max_wait_s=settings.search_max_wait_s,
        api_key=key,
    )


def _interval(settings: Settings, default_s: float) -> float:
    return default_s if settings.search_min_interval_s is None else settings.search_min_interval_s


def download_candidates(
    ctx: Context,
    dataset_id: str,
    candidate_ids: Sequence[str],
    *,
    batch: str,
    lines: dict[str, ProviderOutcome] | None = None,
    progress: Progress | None = None,
) -> list[str]:
    """Download the candidates (no key sent), skip bytes the dataset holds, stage the rest under the upload
    batch; the ids staged. Each failure is the candidate's, with its reason."""
    lines = lines if lines is not None else {}
    with ctx.catalog.session() as session:
        rows = session.scalars(select(SearchCandidate).where(SearchCandidate.id.in_(list(candidate_ids))))
        todo = sorted(
            ((row.id, row.provider, Candidate.from_provenance(row.provenance)) for row in rows),
            key=lambda item: list(candidate_ids).index(item[0]),
        )
        known = records.dataset_sha256(session, dataset_id)
    clients: dict[str, ApiClient] = {}
    staged: list[str] = []
    for index, (row_id, name, candidate) in enumerate(todo):
        line = lines.setdefault(name, ProviderOutcome(name))
        client = clients.get(name)
        if client is None:
            interval = min(get_provider(name).min_interval_s, DOWNLOAD_INTERVAL_S)
            client = clients[name] = api_client(ctx, name, key=None, interval_s=interval)
        status, reason, sha = _download_one(ctx, client, candidate, dataset_id, batch, index, known)
        with ctx.catalog.session() as session:
            row = session.get(SearchCandidate, row_id)
            assert row is not None
            row.status, row.reason, row.sha256 = status, reason, sha
        if status == Status.DOWNLOADED:
            staged.append(row_id)
        elif status == Status.SEEN:
            line.already_seen += 1
            line.new = max(0, line.new - 1)
        else:
            line.failed += 1
            line.new = max(0, line.new - 1)
        if progress is not None:
            progress(name, "download", 1)
    return staged


def _download_one(
    ctx: Context,
    client: ApiClient,
    candidate: Candidate,
    dataset_id: str,
    batch: str,
    index: int,
    known: set[str],
) -> tuple[str, str | None, str | None]:
    try:
        data = client.download(candidate.file_url)
    except (LoraForgeError, ProviderError) as exc:
        return Status.FAILED, str(exc), None
    sha = sha256_hex(data)
    if sha in known:
        return Status.SEEN, "the dataset already holds these bytes", sha
    known.add(sha)
    fmt = sniff_format(data) or "jpg"
    name = f"{candidate.provider}-{_safe(candidate.provider_id)}.{'jpg' if fmt == 'jpeg' else fmt}"
    try:
        ctx.store.put(upload_key(dataset_id, batch, index, name), data)
    except LoraForgeError as exc:
        return Status.FAILED, f"not staged: {exc}", sha
    return Status.DOWNLOADED, None, sha


def _safe(text: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in text)[:60] or "picture"


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
    outcome.ingest = ingest(batch)
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
