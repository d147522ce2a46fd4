"""What a search is asked and what came of it: the request, one line per provider, and the context it
runs in (the parts of loraforge.stages.context.Context a search uses: sources sit below the stages)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from loraforge.catalog.db import Catalog
from loraforge.config import Settings
from loraforge.errors import InvalidInput
from loraforge.sources.enumerate import SourceLimits
from loraforge.sources.search.base import Rating
from loraforge.storage import ObjectStore


class Context(Protocol):
    """Satisfied by loraforge.stages.context.Context."""

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
