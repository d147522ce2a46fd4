"""Licence codes: how each provider spells a licence, turned into one code, and what the codes allow.

Codes follow Creative Commons' short names: cc0, pdm (public domain mark), cc-by, cc-by-sa, cc-by-nd,
cc-by-nc, cc-by-nc-sa, cc-by-nc-nd; "unknown" is every picture whose provider gives no licence (the
boorus, Brave) or gives one we cannot read. A `--licence` filter names codes; "unknown" never passes one.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from loraforge.errors import InvalidInput

UNKNOWN = "unknown"
CODES = ("cc0", "pdm", "cc-by", "cc-by-sa", "cc-by-nd", "cc-by-nc", "cc-by-nc-sa", "cc-by-nc-nd")

_CC_URL = "https://creativecommons.org"
_LABELS = {
    "cc0": "CC0",
    "pdm": "Public Domain Mark",
    UNKNOWN: "licence unknown",
}


def label(code: str, version: str | None = None) -> str:
    """How a person reads a code: "CC BY-SA 4.0", "CC0", "licence unknown"."""
    text = _LABELS.get(code) or code.upper().replace("CC-", "CC ")
    return f"{text} {version}" if version and code not in (UNKNOWN, "pdm") else text


def flags(code: str) -> list[str]:
    """What a trainer of the dataset must know before using a picture under this licence."""
    if code == UNKNOWN:
        return ["licence unknown: check the page before training or publishing"]
    out = []
    if "-nc" in code:
        out.append("non-commercial only")
    if "-nd" in code:
        out.append("no derivatives: training a model on it may not be allowed")
    return out


def parse_filter(values: Iterable[str]) -> frozenset[str] | None:
    """The codes a `--licence cc0,cc-by` filter allows; None when none is given. InvalidInput for a code
    that does not exist or for "unknown" (a filter exists to refuse unknown licences)."""
    codes = {value.strip().lower() for value in values if value.strip()}
    if not codes:
        return None
    wrong = sorted(codes - set(CODES))
    if wrong:
        raise InvalidInput(
            f"unknown licence code(s) {', '.join(wrong)}: use {', '.join(CODES)} "
            "(pictures whose licence is unknown never pass a licence filter)"
        )
    return frozenset(codes)


def from_openverse(license: str | None, version: str | None) -> str:
    """Openverse's `license`: by, by-sa, by-nc-nd, cc0, pdm, sampling+, ..."""
    value = (license or "").strip().lower()
    if value in ("cc0", "pdm"):
        return value
    code = f"cc-{value}"
    return code if code in CODES else UNKNOWN


_SHORT_NAME = re.compile(r"^cc[ -]?(by(?:[ -](?:nc|sa|nd))*)(?:[ -]([0-9.]+))?", re.IGNORECASE)


def from_short_name(short_name: str | None) -> tuple[str, str | None]:
    """Wikimedia's LicenseShortName ("CC BY-SA 4.0", "CC0", "Public domain") as (code, version)."""
    value = re.sub(r"<[^>]+>", "", short_name or "").strip()
    lowered = value.lower()
    if lowered.startswith("cc0") or lowered.startswith("cc-zero"):
        return "cc0", "1.0"
    if lowered in ("public domain", "pd", "public domain mark"):
        return "pdm", None
    match = _SHORT_NAME.match(value)
    if match:
        code = "cc-" + re.sub(r"[ -]+", "-", match.group(1).lower())
        if code in CODES:
            return code, match.group(2)
    return UNKNOWN, None


def licence_url(code: str, version: str | None) -> str | None:
    """The deed of a Creative Commons licence, when the provider gives none."""
    if code == "cc0":
        return f"{_CC_URL}/publicdomain/zero/1.0/"
    if code == "pdm":
        return f"{_CC_URL}/publicdomain/mark/1.0/"
    if code.startswith("cc-") and version:
        return f"{_CC_URL}/licenses/{code[3:]}/{version}/"
    return None
