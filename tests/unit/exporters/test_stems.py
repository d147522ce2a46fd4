"""safe_stem: ASCII, no spaces or slashes, at most 80 chars, unique per content, the same every time."""

from __future__ import annotations

import hashlib
import re

import pytest

from loraforge.errors import InvalidInput
from loraforge.exporters import safe_stem


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@pytest.mark.parametrize(
    "filename",
    [
        "IMG_0001.JPG",
        "Ünïcödé fötö.jpeg",
        "../../etc/passwd",
        "C:\\Users\\me\\pic one.png",
        "日本語.webp",
        "a" * 300 + ".jpg",
        "   .png",
        ".hidden",
        "x-masklabel.png",
        "con.jpg",
        "photo.tar.gz",
    ],
)
def test_stems_are_safe(filename: str) -> None:
    stem = safe_stem(filename, sha(filename))
    assert re.fullmatch(r"[a-z0-9_-]+", stem), stem
    assert len(stem) <= 80 and not stem.endswith("-masklabel")
    assert stem.endswith("_" + sha(filename)[:8])


def test_stems_are_stable_and_readable() -> None:
    assert safe_stem("My Photo (2).JPG", sha("x")) == safe_stem("My Photo (2).JPG", sha("x"))
    assert safe_stem("My Photo (2).JPG", sha("x")).startswith("my-photo-2_")
    assert safe_stem("Ünïcödé fötö.jpeg", sha("x")).startswith("unicode-foto_")
    assert safe_stem("日本語.webp", sha("x")).startswith("img_")


def test_same_name_different_bytes_gives_different_stems() -> None:
    stems = {safe_stem("IMG_0001.jpg", sha(str(i))) for i in range(500)}
    assert len(stems) == 500


def test_rejects_non_hash() -> None:
    with pytest.raises(InvalidInput):
        safe_stem("a.jpg", "not-a-hash")
