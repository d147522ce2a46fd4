"""The catalog side of searches: saved queries, cursors, candidates, and each added picture's provenance."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from loraforge.catalog.models import Dataset, Image, ImageMetadata, SearchCandidate, SearchCursor, SearchQuery
from loraforge.errors import Conflict, NotFound
from loraforge.sources.search import licences
from loraforge.sources.search.base import Candidate, Cursor

PROVENANCE_KEY = "provenance"
"""image_metadata key of a picture's provenance (DESIGN §3)."""
SYNC_KEY = "sync_searches"
"""Dataset setting: re-run the dataset's saved queries on the source-sync schedule."""


class Status:
    FOUND = "found"
    """Offered and passing the filters: waits to be picked (API) or downloaded (CLI)."""
    REFUSED = "refused"
    DOWNLOADED = "downloaded"
    ADDED = "added"
    SEEN = "seen"
    """Its bytes are already in the dataset (same sha256)."""
    FAILED = "failed"


def save_query(session: Session, dataset_id: str, text: str, params: dict[str, Any]) -> SearchQuery:
    """The dataset's saved query with this text (created on first use), with the params of this run."""
    query = session.scalar(
        select(SearchQuery).where(SearchQuery.dataset_id == dataset_id, SearchQuery.text == text)
    )
    if query is None:
        query = SearchQuery(dataset_id=dataset_id, text=text, params=params)
        session.add(query)
    else:
        query.params = params
    query.last_run_at = datetime.now(UTC)
    session.flush()
    return query


def saved_queries(session: Session, dataset_id: str) -> Sequence[SearchQuery]:
    return session.scalars(
        select(SearchQuery).where(SearchQuery.dataset_id == dataset_id).order_by(SearchQuery.created_at)
    ).all()


def candidate_counts(session: Session, dataset_id: str) -> dict[str, dict[str, int]]:
    """query id -> {status: how many candidates}."""
    rows = session.execute(
        select(SearchCandidate.query_id, SearchCandidate.status, func.count())
        .where(SearchCandidate.dataset_id == dataset_id)
        .group_by(SearchCandidate.query_id, SearchCandidate.status)
    )
    counts: dict[str, dict[str, int]] = {}
    for query_id, status, count in rows:
        counts.setdefault(query_id, {})[status] = count
    return counts


def get_query(session: Session, dataset_id: str, query_id: str) -> SearchQuery:
    query = session.get(SearchQuery, query_id)
    if query is None or query.dataset_id != dataset_id:
        raise NotFound(f"search {query_id} not found in this dataset")
    return query


def load_cursor(session: Session, query_id: str, provider: str) -> tuple[Cursor | None, bool]:
    """(cursor, exhausted) where this query stopped at this provider; (None, False) the first time."""
    row = session.get(SearchCursor, (query_id, provider))
    return (None, False) if row is None else (row.cursor, row.exhausted)


def save_cursor(session: Session, query_id: str, provider: str, cursor: Cursor | None) -> None:
    row = session.get(SearchCursor, (query_id, provider))
    if row is None:
        row = SearchCursor(query_id=query_id, provider=provider)
        session.add(row)
    row.cursor, row.exhausted = cursor, cursor is None
    session.flush()


def url_hash(url: str) -> str:
    return hashlib.sha256(url.encode("utf-8")).hexdigest()


def seen_keys(session: Session, query_id: str, provider: str) -> tuple[set[str], set[str]]:
    """(provider ids, file URL hashes) this query has already met at this provider."""
    rows = session.execute(
        select(SearchCandidate.provider_id, SearchCandidate.file_url_hash).where(
            SearchCandidate.query_id == query_id, SearchCandidate.provider == provider
        )
    ).all()
    return {row[0] for row in rows}, {row[1] for row in rows}


def add_candidate(
    session: Session, query: SearchQuery, candidate: Candidate, *, status: str, reason: str | None = None
) -> SearchCandidate:
    row = SearchCandidate(
        query_id=query.id,
        dataset_id=query.dataset_id,
        provider=candidate.provider,
        provider_id=candidate.provider_id[:200],
        file_url_hash=url_hash(candidate.file_url),
        status=status,
        reason=reason,
        provenance=candidate.provenance(),
    )
    session.add(row)
    return row


def pending_candidates(session: Session, query_id: str, provider: str, limit: int) -> list[SearchCandidate]:
    """Candidates found and not yet downloaded, oldest first: what a CLI run downloads."""
    return list(
        session.scalars(
            select(SearchCandidate)
            .where(
                SearchCandidate.query_id == query_id,
                SearchCandidate.provider == provider,
                SearchCandidate.status == Status.FOUND,
            )
            .order_by(SearchCandidate.created_at, SearchCandidate.id)
            .limit(limit)
        )
    )


def picked_candidates(session: Session, query: SearchQuery, ids: Iterable[str]) -> list[SearchCandidate]:
    """The candidates of this search a client picked; NotFound naming any id that is not one of them,
    Conflict for one its filters refused."""
    wanted = list(dict.fromkeys(ids))
    rows = {
        row.id: row
        for row in session.scalars(
            select(SearchCandidate).where(
                SearchCandidate.query_id == query.id, SearchCandidate.id.in_(wanted)
            )
        )
    }
    unknown = [i for i in wanted if i not in rows]
    if unknown:
        raise NotFound(f"not candidates of search {query.id}: {', '.join(unknown[:10])}")
    refused = [row.id for row in rows.values() if row.status == Status.REFUSED]
    if refused:
        raise Conflict(f"refused by the search's filters, cannot be added: {', '.join(refused[:10])}")
    return [rows[i] for i in wanted]


def dataset_sha256(session: Session, dataset_id: str) -> set[str]:
    return set(session.scalars(select(Image.sha256).where(Image.dataset_id == dataset_id)))


def record_provenance(session: Session, dataset_id: str, candidate_ids: Sequence[str]) -> dict[str, int]:
    """Link each downloaded candidate to the picture ingest made of it and store its provenance there.

    A downloaded candidate with no picture afterwards was refused by ingest (corrupt, too large): failed.
    """
    rows = session.scalars(
        select(SearchCandidate).where(
            SearchCandidate.id.in_(list(candidate_ids)), SearchCandidate.status == Status.DOWNLOADED
        )
    ).all()
    by_sha = {
        sha: image_id
        for sha, image_id in session.execute(
            select(Image.sha256, Image.id).where(
                Image.dataset_id == dataset_id, Image.sha256.in_([r.sha256 for r in rows if r.sha256])
            )
        )
    }
    counts = {"added": 0, "failed": 0}
    for row in rows:
        image_id = by_sha.get(row.sha256 or "")
        if image_id is None:
            row.status, row.reason = Status.FAILED, "downloaded, but ingest did not take it"
            counts["failed"] += 1
            continue
        row.status, row.image_id = Status.ADDED, image_id
        value = provenance_record(row.provenance)
        existing = session.get(ImageMetadata, (image_id, PROVENANCE_KEY))
        if existing is None:
            session.add(ImageMetadata(image_id=image_id, key=PROVENANCE_KEY, value=value))
        else:
            existing.value = value
        counts["added"] += 1
    session.flush()
    return counts


def provenance_record(values: dict[str, Any]) -> dict[str, Any]:
    """What is stored with a picture: the provider's facts, the licence's label and its flags."""
    code = str(values.get("licence") or licences.UNKNOWN)
    return {
        **values,
        "licence": code,
        "licence_label": licences.label(code, values.get("licence_version")),
        "flags": licences.flags(code),
    }


def provenance_by_image(session: Session, image_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
    """image id -> provenance of those pictures that came from a search (for exports)."""
    if not image_ids:
        return {}
    rows = session.execute(
        select(ImageMetadata.image_id, ImageMetadata.value).where(
            ImageMetadata.image_id.in_(list(image_ids)), ImageMetadata.key == PROVENANCE_KEY
        )
    )
    return {image_id: value for image_id, value in rows if isinstance(value, dict)}


def set_sync(dataset: Dataset, enabled: bool) -> None:
    """Opt the dataset in (or out of) re-running its saved queries on the source-sync schedule."""
    dataset.settings = {**(dataset.settings or {}), SYNC_KEY: enabled}


def datasets_syncing_searches(session: Session) -> list[str]:
    return [
        dataset.id
        for dataset in session.scalars(select(Dataset).order_by(Dataset.created_at))
        if (dataset.settings or {}).get(SYNC_KEY)
    ]
