"""Danbooru: tagged illustrations with a rating (g/s/q/e) and artist tags, and no licence.

/posts.json?tags=&page=&limit=; the cursor pages by id ("b<lowest id seen>"), so posts added while a search
is paused do not shift the pages. A key is optional (`login:api_key`, sent as HTTP basic auth).
"""

from __future__ import annotations

import base64
from typing import Any, ClassVar

from loraforge.sources.search.base import Candidate, Cursor, Page, Rating, SearchTerms
from loraforge.sources.search.http import ApiClient, ProviderError
from loraforge.sources.search.registry import register

MAX_PAGE_SIZE = 200
RATINGS = {"g": Rating.GENERAL, "s": Rating.SENSITIVE, "q": Rating.QUESTIONABLE, "e": Rating.EXPLICIT}


@register
class Danbooru:
    name: ClassVar[str] = "danbooru"
    title: ClassVar[str] = "Danbooru"
    needs_key: ClassVar[bool] = False
    gives_licence: ClassVar[bool] = False
    min_interval_s: ClassVar[float] = 0.2

    def page(self, client: ApiClient, terms: SearchTerms, cursor: Cursor | None) -> Page:
        page = str((cursor or {}).get("page", "1"))
        params = {"tags": terms.query, "page": page, "limit": min(terms.page_size, MAX_PAGE_SIZE)}
        headers = None
        if client.api_key:
            headers = {"Authorization": "Basic " + base64.b64encode(client.api_key.encode()).decode()}
        answer = client.get_json("/posts.json", params, headers=headers)
        if isinstance(answer, dict) and answer.get("success") is False:
            raise ProviderError(f"danbooru: {answer.get('message') or answer.get('error')}")
        if not isinstance(answer, list):
            raise ProviderError(f"danbooru: unexpected answer {str(answer)[:100]}")
        posts = [post for post in answer if isinstance(post, dict) and post.get("id") is not None]
        base = client.base_url
        candidates = [_candidate(post, base) for post in posts if post.get("file_url")]
        if not posts:
            return Page(candidates, None)
        return Page(candidates, {"page": f"b{min(int(post['id']) for post in posts)}"})


def _candidate(post: dict[str, Any], base: str) -> Candidate:
    artists = str(post.get("tag_string_artist") or "").split()
    return Candidate(
        provider="danbooru",
        provider_id=str(post["id"]),
        file_url=str(post["file_url"]),
        page_url=f"{base}/posts/{post['id']}",
        thumbnail_url=post.get("preview_file_url"),
        creator=", ".join(artists) or None,
        rating=RATINGS.get(str(post.get("rating"))),
        tags=tuple(str(post.get("tag_string") or "").split()),
        width=post.get("image_width"),
        height=post.get("image_height"),
        file_bytes=post.get("file_size"),
    )
