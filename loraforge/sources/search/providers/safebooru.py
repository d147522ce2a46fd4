"""Safebooru (safebooru.org): Gelbooru 0.2's dapi, answering a bare JSON list, or an empty body when
nothing matched; pictures are built from `directory` and `image`. No key, no licence.
Cursor: {"pid": n, "limit": page size}.
"""

from __future__ import annotations

from typing import ClassVar

from loraforge.sources.search.base import Cursor, Page, SearchTerms
from loraforge.sources.search.http import ApiClient, ProviderError
from loraforge.sources.search.providers.gelbooru import dapi_params, gelbooru_candidate
from loraforge.sources.search.registry import register

MAX_PAGE_SIZE = 100


@register
class Safebooru:
    name: ClassVar[str] = "safebooru"
    title: ClassVar[str] = "Safebooru"
    needs_key: ClassVar[bool] = False
    gives_licence: ClassVar[bool] = False
    min_interval_s: ClassVar[float] = 0.5

    def page(self, client: ApiClient, terms: SearchTerms, cursor: Cursor | None) -> Page:
        pid = int((cursor or {}).get("pid", 0))
        limit = min(int((cursor or {}).get("limit") or terms.page_size), MAX_PAGE_SIZE)
        answer = client.get_json("/index.php", dapi_params(terms.query, pid, limit))
        if answer is None:  # an empty body: no (more) results
            return Page([], None)
        if not isinstance(answer, list):
            raise ProviderError(f"safebooru: unexpected answer {str(answer)[:100]}")
        posts = [post for post in answer if isinstance(post, dict) and post.get("id") is not None]
        candidates = [gelbooru_candidate("safebooru", post, client.base_url) for post in posts]
        more = len(posts) >= limit
        following = {"pid": pid + 1, "limit": limit} if more else None
        return Page([c for c in candidates if c is not None], following)
