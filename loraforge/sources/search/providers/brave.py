"""Brave Search's image search (needs LORAFORGE_BRAVE_API_KEY, sent as X-Subscription-Token).

Results are pictures found on the web: their licence is unknown, and Brave's terms leave the rights with
each site, so every picture is flagged "licence unknown". One page only: the API has no offset for images.
"""

from __future__ import annotations

import hashlib
from typing import Any, ClassVar

from loraforge.sources.search.base import Candidate, Cursor, Page, SearchTerms
from loraforge.sources.search.http import ApiClient, ProviderError
from loraforge.sources.search.registry import register

MAX_COUNT = 100


@register
class Brave:
    name: ClassVar[str] = "brave"
    title: ClassVar[str] = "Brave Image Search"
    needs_key: ClassVar[bool] = True
    gives_licence: ClassVar[bool] = False
    min_interval_s: ClassVar[float] = 1.0

    def page(self, client: ApiClient, terms: SearchTerms, cursor: Cursor | None) -> Page:
        if not client.api_key:
            raise ProviderError("brave needs a key: set LORAFORGE_BRAVE_API_KEY")
        params = {"q": terms.query, "count": min(max(terms.page_size, 1), MAX_COUNT), "safesearch": "strict"}
        answer = client.get_json(
            "/res/v1/images/search", params, headers={"X-Subscription-Token": client.api_key}
        )
        if not isinstance(answer, dict) or not isinstance(answer.get("results"), list):
            raise ProviderError(f"brave: unexpected answer {str(answer)[:100]}")
        candidates = [c for c in (_candidate(r) for r in answer["results"]) if c is not None]
        return Page(candidates, None)


def _candidate(result: Any) -> Candidate | None:
    if not isinstance(result, dict):
        return None
    file_url = (result.get("properties") or {}).get("url")
    if not file_url:
        return None
    return Candidate(
        provider="brave",
        provider_id=hashlib.sha256(str(file_url).encode()).hexdigest()[:24],
        file_url=str(file_url),
        page_url=result.get("url"),
        thumbnail_url=(result.get("thumbnail") or {}).get("src"),
        title=result.get("title"),
        creator=result.get("source"),
    )
