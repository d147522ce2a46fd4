"""Source enumeration and reading: folders by content, safe zips, refused URLs."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from loraforge.errors import InvalidInput
from loraforge.sources import SourceLimits, enumerate_sources, read_source_item
from loraforge.sources.urls import check_url
from loraforge.sources.zips import unsafe_reason
from tests.support.images import jpeg_bytes, zip_bomb_entry_bytes, zip_bytes

LIMITS = SourceLimits(max_file_bytes=20 * 1024 * 1024, max_zip_ratio=100, max_zip_total_bytes=10**9)


def test_folder_finds_images_by_content_and_skips_other_files(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "a.jpg").write_bytes(jpeg_bytes(seed=1))
    (tmp_path / "sub" / "no_extension").write_bytes(jpeg_bytes(seed=2))
    (tmp_path / "notes.txt").write_text("not a picture")
    (tmp_path / ".hidden.jpg").write_bytes(jpeg_bytes(seed=3))
    items = enumerate_sources([str(tmp_path)], LIMITS)
    assert [item["filename"] for item in items] == ["a.jpg", "sub/no_extension"]
    assert read_source_item(items[1], LIMITS, {}) == jpeg_bytes(seed=2)


@pytest.mark.parametrize("name", ["../../evil.jpg", "/etc/evil.jpg", "a/../../evil.jpg", "C:\\evil.jpg"])
def test_unsafe_zip_entries_are_refused(name: str) -> None:
    assert unsafe_reason(name) is not None


def test_zip_entries_listed_with_unsafe_and_bomb_entries_failed(tmp_path: Path) -> None:
    archive = tmp_path / "pics.zip"
    archive.write_bytes(
        zip_bytes(
            {
                "good/one.jpg": jpeg_bytes(seed=1),
                "../../evil.jpg": jpeg_bytes(seed=2),
                "bomb.png": zip_bomb_entry_bytes(32 * 1024 * 1024),
                "__MACOSX/._one.jpg": b"junk",
            }
        )
    )
    items = {item["filename"]: item for item in enumerate_sources([str(archive)], LIMITS)}
    assert set(items) == {"good/one.jpg", "../../evil.jpg", "bomb.png"}
    assert items["good/one.jpg"]["error"] is None
    assert "traversal" in str(items["../../evil.jpg"]["error"])
    assert "zip bomb" in str(items["bomb.png"]["error"])
    assert read_source_item(items["good/one.jpg"], LIMITS, {}) == jpeg_bytes(seed=1)


def test_zip_member_that_lies_about_its_size_is_stopped(tmp_path: Path) -> None:
    archive = tmp_path / "liar.zip"
    archive.write_bytes(zip_bytes({"x.jpg": zip_bomb_entry_bytes(8 * 1024 * 1024)}))
    item = {"source_kind": "zip", "source_uri": str(archive), "member": "x.jpg", "filename": "x.jpg"}
    strict = SourceLimits(max_file_bytes=4 * 1024 * 1024, max_zip_ratio=100, max_zip_total_bytes=10**9)
    with pytest.raises(InvalidInput, match="expands beyond"):
        read_source_item(item, strict, {})


def test_bad_zip_is_reported_and_other_sources_go_on(tmp_path: Path) -> None:
    bad = tmp_path / "bad.zip"
    bad.write_bytes(b"PK\x03\x04" + b"garbage" * 10)
    good = tmp_path / "good"
    good.mkdir()
    (good / "x.jpg").write_bytes(jpeg_bytes())
    with zipfile.ZipFile(tmp_path / "empty.zip", "w"):
        pass
    items = enumerate_sources([str(bad), str(tmp_path / "missing"), str(good)], LIMITS)
    errors = [item["error"] for item in items]
    assert errors[-1] is None and items[-1]["filename"] == "x.jpg"
    assert any("not found" in str(e) for e in errors)
    assert len(items) == 3


@pytest.mark.parametrize(
    "url",
    ["http://127.0.0.1/x.jpg", "http://localhost:8080/x.jpg", "http://10.1.2.3/x.jpg", "file:///etc/passwd"],
)
def test_private_and_non_http_urls_are_refused(url: str) -> None:
    with pytest.raises(InvalidInput):
        check_url(url, allow_private=False)


def test_private_urls_allowed_when_configured() -> None:
    check_url("http://127.0.0.1:9/x.jpg", allow_private=True)
