"""Licence codes read from each provider's spelling, the filter, and the attribution file."""

from __future__ import annotations

import pytest

from loraforge.errors import InvalidInput
from loraforge.exporters import ExportItem
from loraforge.exporters.attribution import attribution_markdown
from loraforge.sources.search import licences
from loraforge.sources.search.base import Candidate, Rating
from loraforge.sources.search.records import provenance_record


@pytest.mark.parametrize(
    "short_name, expected",
    [
        ("CC BY-SA 4.0", ("cc-by-sa", "4.0")),
        ("CC BY 2.0", ("cc-by", "2.0")),
        ("CC-BY-NC-ND-3.0", ("cc-by-nc-nd", "3.0")),
        ("CC0", ("cc0", "1.0")),
        ("Public domain", ("pdm", None)),
        ("<span>CC BY-SA 3.0</span>", ("cc-by-sa", "3.0")),
        ("GFDL", ("unknown", None)),
        (None, ("unknown", None)),
    ],
)
def test_wikimedia_short_names(short_name: str | None, expected: tuple[str, str | None]) -> None:
    assert licences.from_short_name(short_name) == expected


def test_openverse_codes() -> None:
    assert licences.from_openverse("by-nc-sa", "2.0") == "cc-by-nc-sa"
    assert licences.from_openverse("cc0", "1.0") == "cc0"
    assert licences.from_openverse("sampling+", "1.0") == "unknown"


def test_filter_refuses_unknown_codes_and_unknown_itself() -> None:
    assert licences.parse_filter(["cc0", " CC-BY "]) == frozenset({"cc0", "cc-by"})
    assert licences.parse_filter(["", " "]) is None
    with pytest.raises(InvalidInput, match="mit"):
        licences.parse_filter(["cc0", "mit"])
    with pytest.raises(InvalidInput, match="unknown"):
        licences.parse_filter(["unknown"])


def test_flags_say_what_a_trainer_must_know() -> None:
    assert licences.flags("cc-by") == []
    assert "non-commercial only" in licences.flags("cc-by-nc-nd")
    assert any("no derivatives" in flag for flag in licences.flags("cc-by-nd"))
    assert any("licence unknown" in flag for flag in licences.flags("unknown"))


def _item(stem: str, provenance: dict | None) -> ExportItem:
    return ExportItem(stem, stem, "0" * 64, None, None, 10, 10, read=lambda: b"", provenance=provenance)


def test_attribution_lists_each_picture_and_says_unknown_plainly() -> None:
    known = Candidate(
        provider="wikimedia",
        provider_id="1",
        file_url="https://upload.wikimedia.org/a.jpg",
        page_url="https://commons.wikimedia.org/wiki/File:A.jpg",
        creator="Ada",
        licence="cc-by-sa",
        licence_version="4.0",
        licence_url="https://creativecommons.org/licenses/by-sa/4.0/",
        attribution='"A" by Ada, CC BY-SA 4.0',
    )
    booru = Candidate(
        provider="safebooru", provider_id="2", file_url="https://s/b.jpg", rating=Rating.GENERAL
    )
    text = attribution_markdown(
        [
            _item("a", provenance_record(known.provenance())),
            _item("b", provenance_record(booru.provenance())),
            _item("c", None),
        ]
    )
    assert text is not None
    assert "2 of the 3 pictures" in text and "1 picture(s) have an unknown licence" in text
    assert "- Licence: [CC BY-SA 4.0](https://creativecommons.org/licenses/by-sa/4.0/)" in text
    assert "- Creator: Ada" in text and "- Source page: https://commons.wikimedia.org/wiki/File:A.jpg" in text
    section_b = text.split("## b", 1)[1]
    assert "- Licence: licence unknown" in section_b and "- Rating: general" in section_b
    assert "## c" not in text
    assert attribution_markdown([_item("c", None)]) is None
