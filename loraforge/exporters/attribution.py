"""ATTRIBUTION.md: who made each picture of an export and under which licence, as a person reads it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from loraforge.exporters.base import ExportItem

ATTRIBUTION_FILE = "ATTRIBUTION.md"


def attribution_markdown(items: Sequence[ExportItem]) -> str | None:
    """The attribution file of an export, or None when no picture carries provenance (none came from an
    image search). Pictures whose licence is unknown say so plainly."""
    known = [item for item in items if item.provenance]
    if not known:
        return None
    unknown = [item for item in known if _get(item, "licence") in (None, "unknown")]
    lines = [
        "# Attribution",
        "",
        f"{len(known)} of the {len(items)} pictures of this dataset came from image searches; their "
        "sources and licences follow. Pictures added from files carry no record here.",
        "",
    ]
    if unknown:
        lines += [
            f"**{len(unknown)} picture(s) have an unknown licence**: their provider gives none. Check each "
            "page before training on them or publishing what you train.",
            "",
        ]
    for item in sorted(known, key=lambda item: item.stem):
        lines += _entry(item)
    return "\n".join(lines).rstrip() + "\n"


def _entry(item: ExportItem) -> list[str]:
    label = _get(item, "licence_label") or _get(item, "licence") or "licence unknown"
    if _get(item, "licence") in (None, "unknown"):
        label = "licence unknown"
    licence_url = _get(item, "licence_url")
    lines = [f"## {item.stem}", ""]
    lines.append(f"- Licence: [{label}]({licence_url})" if licence_url else f"- Licence: {label}")
    for title, key in (
        ("Creator", "creator"),
        ("Attribution", "attribution"),
        ("Source page", "page_url"),
        ("File", "file_url"),
        ("Provider", "provider"),
        ("Rating", "rating"),
    ):
        value = _get(item, key)
        if value:
            lines.append(f"- {title}: {_one_line(str(value))}")
    for flag in (item.provenance or {}).get("flags") or []:
        lines.append(f"- Note: {flag}")
    return [*lines, ""]


def _get(item: ExportItem, key: str) -> Any:
    provenance: Mapping[str, Any] = item.provenance or {}
    return provenance.get(key)


def _one_line(text: str) -> str:
    return " ".join(text.split())
