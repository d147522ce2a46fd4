"""Wikimedia Commons: the MediaWiki action API, files (namespace 6) found by full-text search.

One request gives the files with their URL, size and extmetadata (LicenseShortName, LicenseUrl, Artist,
Attribution). The answer's `continue` object is merged into the next request as is: that object is the
cursor, and its absence means there is no more.
"""

from __future__ import annotations

import html
import re
from typing import Any, ClassVar

from loraforge.sources.search import licences
from loraforge.sources.search.base import Candidate, Cursor, Page, SearchTerms
from loraforge.sources.search.http import ApiClient, ProviderError
from loraforge.sources.search.registry import register

MAX_PAGE_SIZE = 50
THUMB_WIDTH = 320


@register
class Wikimedia:
    name: ClassVar[str] = "wikimedia"
    title: ClassVar[str] = "Wikimedia Commons"
    needs_key: ClassVar[bool] = False
    gives_licence: ClassVar[bool] = True
    min_interval_s: ClassVar[float] = 0.5

    def page(self, client: ApiClient, terms: SearchTerms, cursor: Cursor | None) -> Page:
        params: dict[str, Any] = {
            "action": "query",
            "format": "json",
            "formatversion": "2",
            "generator": "search",
            "gsrsearch": terms.query,
            "gsrnamespace": "6",
            "gsrlimit": min(terms.page_size, MAX_PAGE_SIZE),
            "prop": "imageinfo",
            "iiprop": "url|extmetadata|size|mime",
            "iiurlwidth": THUMB_WIDTH,
            **(cursor or {}),
        }
        headers = {"Authorization": f"Bearer {client.api_key}"} if client.api_key else None
        answer = client.get_json("/w/api.php", params, headers=headers)
        if not isinstance(answer, dict):
            raise ProviderError(f"wikimedia: unexpected answer {str(answer)[:100]}")
        if "error" in answer:
            error = answer["error"]
            raise ProviderError(f"wikimedia: {error.get('code')}: {error.get('info')}")
        pages = (answer.get("query") or {}).get("pages") or []
        if isinstance(pages, dict):  # formatversion=1 answers an object keyed by page id
            pages = list(pages.values())
        pages = sorted((p for p in pages if isinstance(p, dict)), key=lambda p: p.get("index", 0))
        candidates = [c for c in (_candidate(p) for p in pages) if c is not None]
        following = answer.get("continue")
        return Page(candidates, dict(following) if isinstance(following, dict) else None)


def _candidate(page: dict[str, Any]) -> Candidate | None:
    infos = page.get("imageinfo") or []
    if not infos or not isinstance(infos[0], dict) or not infos[0].get("url"):
        return None
    info = infos[0]
    if not str(info.get("mime", "image/")).startswith("image/"):
        return None  # PDFs, videos and sounds live in namespace 6 too
    meta = info.get("extmetadata") or {}

    def value(key: str) -> str | None:
        raw = (meta.get(key) or {}).get("value")
        return _text(raw) if raw else None

    code, version = licences.from_short_name(value("LicenseShortName"))
    creator = value("Artist")
    title = str(page.get("title", "")).removeprefix("File:") or None
    attribution = value("Attribution") or _attribution(title, creator, code, version)
    return Candidate(
        provider="wikimedia",
        provider_id=str(page.get("pageid")),
        file_url=str(info["url"]),
        page_url=info.get("descriptionurl"),
        thumbnail_url=info.get("thumburl"),
        title=title,
        creator=creator,
        licence=code,
        licence_version=version,
        licence_url=value("LicenseUrl") or licences.licence_url(code, version),
        attribution=attribution,
        width=info.get("width"),
        height=info.get("height"),
        file_bytes=info.get("size"),
    )


def _text(raw: Any) -> str:
    """extmetadata values are HTML fragments: keep the text."""
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", str(raw))).split())


def _attribution(title: str | None, creator: str | None, code: str, version: str | None) -> str:
    parts = [f'"{title}"' if title else "Picture", f"by {creator}" if creator else None]
    parts.append(f"is licensed under {licences.label(code, version)}")
    return " ".join(p for p in parts if p)
