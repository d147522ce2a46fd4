"""The shared downloader: one polite client per provider, pictures fetched without keys, checked, deduped by
sha256 against the dataset and staged in object storage as one upload batch for the normal ingest."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from sqlalchemy import select

from loraforge.catalog.models import SearchCandidate
from loraforge.config import Settings
from loraforge.errors import LoraForgeError
from loraforge.imaging.decode import sniff_format
from loraforge.imaging.hashes import sha256_hex
from loraforge.sources.search import records
from loraforge.sources.search.base import Candidate
from loraforge.sources.search.http import ApiClient, ProviderError, user_agent
from loraforge.sources.search.pacing import CatalogPacer
from loraforge.sources.search.records import Status
from loraforge.sources.search.registry import base_url, get_provider
from loraforge.sources.search.request import Context, Progress, ProviderOutcome
from loraforge.storage.keys import upload_key

DOWNLOAD_INTERVAL_S = 0.25


def api_client(
    ctx: Context, name: str, *, key: str | None, interval_s: float, purpose: Literal["api", "download"]
) -> ApiClient:
    """The client of one provider, paced with every other process of the deployment: its API calls and
    its picture downloads keep separate paces."""
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
        pacer=CatalogPacer(ctx.catalog, f"{name}:{purpose}"),
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
        order = {candidate_id: index for index, candidate_id in enumerate(candidate_ids)}
        todo = sorted(
            ((row.id, row.provider, Candidate.from_provenance(row.provenance)) for row in rows),
            key=lambda item: order[item[0]],
        )
        known = records.dataset_sha256(session, dataset_id)
    clients: dict[str, ApiClient] = {}
    staged: list[str] = []
    for index, (row_id, name, candidate) in enumerate(todo):
        line = lines.setdefault(name, ProviderOutcome(name))
        client = clients.get(name)
        if client is None:
            interval = min(get_provider(name).min_interval_s, DOWNLOAD_INTERVAL_S)
            client = clients[name] = api_client(ctx, name, key=None, interval_s=interval, purpose="download")
        status, reason, sha = _download_one(ctx, client, candidate, dataset_id, batch, index, known)
        with ctx.catalog.session() as session:
            row = session.get(SearchCandidate, row_id)
            assert row is not None
            row.status, row.reason, row.sha256 = status, reason, sha
        if status == Status.DOWNLOADED:
            staged.append(row_id)
        elif status == Status.SEEN:  # not new after all: the dataset holds these bytes
            line.already_seen += 1
            line.new = max(0, line.new - 1)
        else:
            line.failed += 1
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
