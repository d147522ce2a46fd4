"""Image searches: preview a provider search for a dataset, then add the candidates a client picks.

A client never sends a URL: providers' addresses and keys are settings, and what a client adds is named by
candidate ids the server stored when it previewed the search. Adding answers 202 with a `search` task,
whose run (flows/search.py) downloads the picks and ingests them, on a Prefect worker when one serves it.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, status
from pydantic import BaseModel, Field, StringConstraints
from sqlalchemy import select

from loraforge.catalog.models import SearchCandidate
from loraforge.sources.search import (
    Rating,
    SearchRequest,
    find_candidates,
    provider_status,
    records,
)
from loraforge.sources.search import licences as licence_codes
from loraforge.stages.datasets import get_dataset
from loraforge.stages.options import SearchAddOptions, StageOptions
from services.api import pipeline
from services.api.deps import ContextDep, ReleasingRoute, SessionDep, SettingsDep, release_connection
from services.api.schemas import ERROR_RESPONSES, NO_CONTROL, TaskAccepted, Timestamp

router = APIRouter(route_class=ReleasingRoute, tags=["search"])

ProviderName = Literal["openverse", "wikimedia", "danbooru", "gelbooru", "safebooru", "brave"]
RatingName = Literal["general", "sensitive", "questionable", "explicit"]
LicenceCode = Literal["cc0", "pdm", "cc-by", "cc-by-sa", "cc-by-nd", "cc-by-nc", "cc-by-nc-sa", "cc-by-nc-nd"]
Query = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=500, pattern=NO_CONTROL)
]
CandidateId = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{32}$")]


class ProviderPublic(BaseModel):
    name: str
    title: str
    configured: bool
    needs_key: bool
    gives_licence: bool
    note: str


class SearchCreate(StageOptions):
    """A search to preview: each provider is asked page after page from where this query last stopped.
    Strict like every options model: a JSON 0 is not false, "5" is not a number."""

    query: Query
    providers: list[ProviderName] = Field(min_length=1, max_length=6)
    licences: list[LicenceCode] | None = Field(
        default=None, max_length=8, description='Licences accepted; none: any ("licence unknown" included).'
    )
    rating: list[RatingName] | None = Field(
        default=["general"],
        max_length=4,
        description="Ratings accepted where a provider rates; null: any.",
    )
    limit: int = Field(default=40, ge=1, le=200, description="Candidates wanted from each provider.")
    min_side: int = Field(default=256, ge=0, le=10_000, description="Shorter side below this is refused.")


class CandidatePublic(BaseModel):
    id: str
    provider: str
    thumbnail_url: str | None
    page_url: str | None
    title: str | None
    creator: str | None
    licence: str
    licence_label: str
    licence_version: str | None
    licence_url: str | None
    rating: str | None
    width: int | None
    height: int | None
    flags: list[str]


class ProviderOutcomePublic(BaseModel):
    provider: str
    found: int
    new: int
    already_seen: int
    refused: dict[str, int]
    failed: int
    added: int
    exhausted: bool
    error: str | None


class SearchPublic(BaseModel):
    id: str
    query: str
    providers: list[ProviderOutcomePublic]
    candidates: list[CandidatePublic]


class SavedSearchPublic(BaseModel):
    id: str
    query: str
    params: dict[str, Any]
    last_run_at: Timestamp | None
    candidates: dict[str, int]
    """How many of its candidates are found (waiting), added, refused, failed..."""


class SavedSearchesPublic(BaseModel):
    data: list[SavedSearchPublic]
    sync: bool
    """Whether the source-sync schedule re-runs these queries."""


class SearchSync(StageOptions):
    enabled: bool


class SearchAdd(StageOptions):
    candidate_ids: list[CandidateId] = Field(min_length=1, max_length=500)


@router.get("/search/providers", response_model=list[ProviderPublic])
def read_search_providers(settings: SettingsDep) -> list[ProviderPublic]:
    """Every provider, and whether this server is configured to search it."""
    return [
        ProviderPublic(
            name=s.name,
            title=s.title,
            configured=s.configured,
            needs_key=s.needs_key,
            gives_licence=s.gives_licence,
            note=s.note,
        )
        for s in provider_status(settings)
    ]


@router.post(
    "/datasets/{dataset_id}/searches",
    response_model=SearchPublic,
    status_code=status.HTTP_201_CREATED,
    responses=ERROR_RESPONSES,
)
def create_search(session: SessionDep, ctx: ContextDep, dataset_id: str, body: SearchCreate) -> SearchPublic:
    """Ask the providers and store the candidates; a provider that fails says why in its line (`error`)
    and the others go on. The same query again continues where it stopped."""
    get_dataset(session, dataset_id)
    release_connection(session)  # providers can take seconds: hold no connection meanwhile
    request = SearchRequest(
        query=body.query,
        providers=tuple(dict.fromkeys(body.providers)),
        licences=frozenset(body.licences) if body.licences is not None else None,
        ratings=frozenset(Rating(name) for name in body.rating) if body.rating is not None else None,
        limit=body.limit,
        min_side=body.min_side,
    )
    outcome = find_candidates(ctx, dataset_id, request)
    assert outcome.query_id is not None
    with ctx.catalog.session() as own:
        rows = own.scalars(select(SearchCandidate).where(SearchCandidate.id.in_(outcome.candidate_ids))).all()
        by_id = {row.id: _candidate_public(row) for row in rows}
    return SearchPublic(
        id=outcome.query_id,
        query=request.query,
        providers=[ProviderOutcomePublic(**line.to_dict()) for line in outcome.providers.values()],
        candidates=[by_id[i] for i in outcome.candidate_ids if i in by_id],
    )


@router.get("/datasets/{dataset_id}/searches", response_model=SavedSearchesPublic, responses=ERROR_RESPONSES)
def read_searches(session: SessionDep, dataset_id: str) -> SavedSearchesPublic:
    """The dataset's saved queries, with their candidates counted by status."""
    dataset = get_dataset(session, dataset_id)
    counts = records.candidate_counts(session, dataset_id)
    return SavedSearchesPublic(
        data=[
            SavedSearchPublic(
                id=q.id,
                query=q.text,
                params=q.params,
                last_run_at=q.last_run_at,
                candidates=counts.get(q.id, {}),
            )
            for q in records.saved_queries(session, dataset_id)
        ],
        sync=bool((dataset.settings or {}).get(records.SYNC_KEY)),
    )


@router.put("/datasets/{dataset_id}/searches/sync", response_model=SearchSync, responses=ERROR_RESPONSES)
def update_search_sync(session: SessionDep, dataset_id: str, body: SearchSync) -> SearchSync:
    """Opt the dataset in (or out): the source-sync schedule re-runs its saved queries."""
    records.set_sync(get_dataset(session, dataset_id), body.enabled)
    return body


@router.post(
    "/datasets/{dataset_id}/searches/{search_id}/add",
    response_model=TaskAccepted,
    status_code=status.HTTP_202_ACCEPTED,
    responses=ERROR_RESPONSES,
)
def add_search_candidates(
    session: SessionDep, ctx: ContextDep, dataset_id: str, search_id: str, body: SearchAdd
) -> TaskAccepted:
    """Download the picked candidates and ingest them; poll GET /tasks/{task_id}. 404 for a search of
    another dataset or an id that is not one of its candidates, 409 for a candidate its filters refused
    or when the dataset is busy, 422 for an id that is not an id."""
    get_dataset(session, dataset_id)
    query = records.get_query(session, dataset_id, search_id)
    ids = [row.id for row in records.picked_candidates(session, query, body.candidate_ids)]
    release_connection(session)  # the run's task row is written on its own connection
    options = SearchAddOptions(search_id=search_id, candidate_ids=ids)
    task_id = pipeline.launch(ctx, stage="search", dataset_id=dataset_id, options=options)
    return TaskAccepted(task_id=task_id, kind="search", status="PENDING")


def _candidate_public(row: SearchCandidate) -> CandidatePublic:
    record = records.provenance_record(row.provenance)
    return CandidatePublic(
        id=row.id,
        provider=row.provider,
        thumbnail_url=record.get("thumbnail_url"),
        page_url=record.get("page_url"),
        title=record.get("title"),
        creator=record.get("creator"),
        licence=record["licence"],
        licence_label=licence_codes.label(record["licence"], record.get("licence_version")),
        licence_version=record.get("licence_version"),
        licence_url=record.get("licence_url"),
        rating=record.get("rating"),
        width=record.get("width"),
        height=record.get("height"),
        flags=record["flags"],
    )
