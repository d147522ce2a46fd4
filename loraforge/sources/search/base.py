"""What every image-search provider shares: a candidate picture, a page of them, and the Provider protocol."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

if TYPE_CHECKING:
    from loraforge.sources.search.http import ApiClient

Cursor = dict[str, Any]
"""Where a provider's next page starts (its own keys: a page number, Wikimedia's `continue` object...)."""


class Rating(StrEnum):
    """Content ratings as the boorus give them (Danbooru's g/s/q/e)."""

    GENERAL = "general"
    SENSITIVE = "sensitive"
    QUESTIONABLE = "questionable"
    EXPLICIT = "explicit"


@dataclass(frozen=True)
class Candidate:
    """One picture a provider offers, with everything known about where it comes from and its licence."""

    provider: str
    provider_id: str
    file_url: str
    page_url: str | None = None
    thumbnail_url: str | None = None
    title: str | None = None
    creator: str | None = None
    licence: str = "unknown"
    """A code of loraforge.sources.search.licences (cc0, cc-by, cc-by-sa, ...) or "unknown"."""
    licence_version: str | None = None
    licence_url: str | None = None
    attribution: str | None = None
    rating: Rating | None = None
    tags: tuple[str, ...] = ()
    width: int | None = None
    height: int | None = None
    file_bytes: int | None = None

    def provenance(self) -> dict[str, Any]:
        """The JSON stored with the picture and carried into every export."""
        values = asdict(self)
        values["rating"] = self.rating.value if self.rating else None
        values["tags"] = list(self.tags)
        return values

    @classmethod
    def from_provenance(cls, values: Mapping[str, Any]) -> Candidate:
        known = {name: values[name] for name in cls.__dataclass_fields__ if name in values}
        known["rating"] = Rating(known["rating"]) if known.get("rating") else None
        known["tags"] = tuple(known.get("tags") or ())
        return cls(**known)


@dataclass(frozen=True)
class Page:
    """One answer of a provider: its candidates and where the next page starts (None: no more)."""

    candidates: list[Candidate] = field(default_factory=list)
    next_cursor: Cursor | None = None


@dataclass(frozen=True)
class SearchTerms:
    """What a provider is asked: the query, how many per page, and the licence codes wanted (None: any)."""

    query: str
    page_size: int = 20
    licences: frozenset[str] | None = None


class Provider(Protocol):
    """An image-search provider: one module each, registered by name (loraforge.sources.search.registry)."""

    name: ClassVar[str]
    title: ClassVar[str]
    needs_key: ClassVar[bool]
    """True when the provider answers nothing without LORAFORGE_<NAME>_API_KEY."""
    gives_licence: ClassVar[bool]
    """False for providers whose pictures are all "licence unknown" (the boorus, Brave)."""
    min_interval_s: ClassVar[float]
    """The politeness floor between two calls, from the provider's published limits."""

    def page(self, client: ApiClient, terms: SearchTerms, cursor: Cursor | None) -> Page:
        """The candidates of the page at `cursor` (None: the first page)."""
        ...
