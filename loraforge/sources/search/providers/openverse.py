"""Openverse (api.openverse.org): openly licensed pictures, each with its licence, creator and attribution.

Anonymous clients may ask for at most 20 results a page (a bigger page_size is a 401), so pages are 20
unless a key is configured. Cursor: {"page": n, "page_size": size}.
"""

from __future__ import annotations

from typing import Any, ClassVar

from loraforge.sources.search import licences
from loraforge.sources.search.base import Candidate, Cursor, Page, SearchTerms
from loraforge.sources.search.http import ApiClient, ProviderError
from loraforge.sources.search.registry import register

ANONYMOUS_PAGE_SIZE = 20
KEYED_PAGE_SIZE = 50


@register
class Openverse:
    name: ClassVar[str] = "openverse"
    title: ClassVar[str] = "Openverse"
    needs_key: ClassVar[bool] = False
    gives_licence: ClassVar[bool] = True
    min_interval_s: ClassVar[float] = 1.0

    def page(self, client: ApiClient, terms: SearchTerms, cursor: Cursor | None) -> Page:
        number = int((cursor or {}).get("page", 1))
        # Pages are numbered in pages of one size: a resumed search keeps the size it started with.
        size = int((cursor or {}).get("page_size") or terms.page_size)
        size = min(size, KEYED_PAGE_SIZE if client.api_key else ANONYMOUS_PAGE_SIZE)
        params: dict[str, Any] = {"q": terms.query, "page": number, "page_size": size}
        if terms.licences:
            wanted = [_openverse_code(code) for code in sorted(terms.licences)]
            params["license"] = ",".join(wanted)
        headers = {"Authorization": f"Bearer {client.api_key}"} if client.api_key else None
        answer = client.get_json("/v1/images/", params, headers=headers)
        if not isinstance(answer, dict) or not isinstance(answer.get("results"), list):
            raise ProviderError(f"openverse: unexpected answer {str(answer)[:100]}")
        rows = [row for row in answer["results"] if isinstance(row, dict) and row.get("url")]
        candidates = [_candidate(row) for row in rows]
        page_count = int(answer.get("page_count") or 0)
        more = bool(answer["results"]) and number < page_count
        return Page(candidates, {"page": number + 1, "page_size": size} if more else None)


def _openverse_code(code: str) -> str:
    return code if code in ("cc0", "pdm") else code.removeprefix("cc-")


def _candidate(row: dict[str, Any]) -> Candidate:
    code = licences.from_openverse(row.get("license"), row.get("license_version"))
    version = row.get("license_version") or None
    return Candidate(
        provider="openverse",
        provider_id=str(row.get("id")),
        file_url=str(row["url"]),
        page_url=row.get("foreign_landing_url"),
        thumbnail_url=row.get("thumbnail"),
        title=row.get("title"),
        creator=row.get("creator"),
        licence=code,
        licence_version=version,
        licence_url=row.get("license_url") or licences.licence_url(code, version),
        attribution=row.get("attribution"),
        tags=tuple(str(t["name"]) for t in row.get("tags") or [] if isinstance(t, dict) and t.get("name")),
        width=_int(row.get("width")),
        height=_int(row.get("height")),
        file_bytes=_int(row.get("filesize")),
    )


def _int(value: Any) -> int | None:
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None
