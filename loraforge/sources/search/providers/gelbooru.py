"""Gelbooru: the dapi JSON interface (index.php?page=dapi&s=post&q=index&json=1); ratings, tags, no licence.

Its `post` is missing when nothing matched, a single object when one did, and a list otherwise; the
`@attributes` object gives the offset and total count. A key is `user_id:api_key`. Cursor: {"pid": n,
"limit": page size}.
"""

from __future__ import annotations

from typing import Any, ClassVar

from loraforge.sources.search.base import Candidate, Cursor, Page, Rating, SearchTerms
from loraforge.sources.search.http import ApiClient, ProviderError
from loraforge.sources.search.registry import register

MAX_PAGE_SIZE = 100
RATINGS = {
    "general": Rating.GENERAL,
    "safe": Rating.GENERAL,
    "sensitive": Rating.SENSITIVE,
    "questionable": Rating.QUESTIONABLE,
    "explicit": Rating.EXPLICIT,
}


@register
class Gelbooru:
    name: ClassVar[str] = "gelbooru"
    title: ClassVar[str] = "Gelbooru"
    needs_key: ClassVar[bool] = False
    gives_licence: ClassVar[bool] = False
    min_interval_s: ClassVar[float] = 0.5

    def page(self, client: ApiClient, terms: SearchTerms, cursor: Cursor | None) -> Page:
        pid = int((cursor or {}).get("pid", 0))
        # pid counts pages of one size: a resumed search keeps the size it started with.
        limit = min(int((cursor or {}).get("limit") or terms.page_size), MAX_PAGE_SIZE)
        params: dict[str, Any] = dapi_params(terms.query, pid, limit)
        if client.api_key and ":" in client.api_key:
            params["user_id"], params["api_key"] = client.api_key.split(":", 1)
        answer = client.get_json("/index.php", params)
        if not isinstance(answer, dict):
            raise ProviderError(f"gelbooru: unexpected answer {str(answer)[:100]}")
        posts = answer.get("post")
        if isinstance(posts, dict):
            posts = [posts]
        elif not isinstance(posts, list):
            posts = []
        posts = [post for post in posts if isinstance(post, dict) and post.get("id") is not None]
        candidates = [gelbooru_candidate("gelbooru", post, client.base_url) for post in posts]
        attributes = answer.get("@attributes") or {}
        count = int(attributes.get("count") or 0)
        more = bool(posts) and (pid + 1) * limit < count
        following = {"pid": pid + 1, "limit": limit} if more else None
        return Page([c for c in candidates if c is not None], following)


def dapi_params(query: str, pid: int, limit: int) -> dict[str, Any]:
    """The Gelbooru 0.2 "dapi" list request, which Safebooru speaks too."""
    return {"page": "dapi", "s": "post", "q": "index", "json": "1", "tags": query, "pid": pid, "limit": limit}


def gelbooru_candidate(provider: str, post: dict[str, Any], base: str) -> Candidate | None:
    file_url = post.get("file_url")
    if not file_url and post.get("directory") and post.get("image"):
        file_url = f"{base}/images/{post['directory']}/{post['image']}"
    if not file_url:
        return None
    preview = post.get("preview_url")
    if not preview and post.get("directory") and post.get("hash"):
        preview = f"{base}/thumbnails/{post['directory']}/thumbnail_{post['hash']}.jpg"
    return Candidate(
        provider=provider,
        provider_id=str(post["id"]),
        file_url=str(file_url),
        page_url=f"{base}/index.php?page=post&s=view&id={post['id']}",
        thumbnail_url=preview,
        rating=RATINGS.get(str(post.get("rating", "")).lower()),
        tags=tuple(str(post.get("tags") or "").split()),
        width=post.get("width"),
        height=post.get("height"),
    )
