"""Turn the user's source arguments into ingest items, and read one item's bytes on a worker.

Enumeration runs in the driver and only lists; reading runs on workers. Items the driver can already
refuse (an unsafe zip entry, a zip bomb) come back with an "error" so the summary reports them.
"""

from __future__ import annotations

import os
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from loraforge.errors import InvalidInput
from loraforge.imaging.decode import IMAGE_EXTENSIONS, sniff_format
from loraforge.sources import urls, zips

_HIDDEN_DIRS = {"__MACOSX", ".git", ".ipynb_checkpoints"}
URL_LIST_SUFFIXES = (".txt", ".urls", ".lst")


@dataclass(frozen=True)
class SourceLimits:
    max_file_bytes: int
    max_zip_ratio: float
    max_zip_total_bytes: int
    url_timeout_s: float = 20.0
    url_max_redirects: int = 3
    allow_private_urls: bool = False
    url_deadline_s: float = 60.0


def enumerate_sources(sources: Iterable[str], limits: SourceLimits) -> list[dict[str, object]]:
    """List every candidate picture of the sources, in a stable order."""
    items: list[dict[str, object]] = []
    for source in sources:
        try:
            items.extend(_enumerate_one(source, limits))
        except InvalidInput as exc:
            # A missing folder or a bad zip is reported like a bad picture; other sources go on.
            items.append(_item("source", source, source, source, error=str(exc)))
    return items


def check_sources(sources: Iterable[str], limits: SourceLimits) -> None:
    """Refuse, before any work, a local source that is missing or holds no picture (URLs come later)."""
    for source in sources:
        if source.startswith(("http://", "https://")):
            continue
        path = Path(source).expanduser()
        if not path.exists():
            raise InvalidInput(f"source not found: {source}")
        if path.is_file() and not (zipfile.is_zipfile(path) or path.suffix.lower() in URL_LIST_SUFFIXES):
            if path.suffix.lower() not in IMAGE_EXTENSIONS and not _sniffs_as_image(path):
                raise InvalidInput(f"{source} is not a picture, a zip file or a .txt list of URLs")
            continue
        if next(iter(_enumerate_one(source, limits)), None) is None:
            raise InvalidInput(f"no pictures found in {source}")


def _enumerate_one(source: str, limits: SourceLimits) -> Iterator[dict[str, object]]:
    if source.startswith(("http://", "https://")):
        yield _item("url", source, source, source)
        return
    path = Path(source).expanduser()
    if not path.exists():
        raise InvalidInput(f"source not found: {source}")
    if path.is_dir():
        yield from _enumerate_folder(path)
    elif zipfile.is_zipfile(path):
        yield from zips.enumerate_zip(path, limits, _item)
    elif path.suffix.lower() in URL_LIST_SUFFIXES:
        yield from _enumerate_url_list(path)
    else:
        yield _item("file", str(path.resolve()), path.name, path.name)


def _enumerate_folder(root: Path) -> Iterator[dict[str, object]]:
    root = root.resolve()
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in _HIDDEN_DIRS and not d.startswith("."))
        for name in sorted(filenames):
            if name.startswith("."):
                continue
            path = Path(dirpath) / name
            relative = path.relative_to(root).as_posix()
            if path.suffix.lower() in IMAGE_EXTENSIONS or _sniffs_as_image(path):
                yield _item("folder", str(root), relative, relative)


def _sniffs_as_image(path: Path) -> bool:
    try:
        with open(path, "rb") as stream:
            return sniff_format(stream.read(16)) is not None
    except OSError:
        return False


def _enumerate_url_list(path: Path) -> Iterator[dict[str, object]]:
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        url = line.strip()
        if url and not url.startswith("#"):
            yield _item("url", url, url, url)


def _item(kind: str, uri: str, member: str, filename: str, error: str | None = None) -> dict[str, object]:
    return {"source_kind": kind, "source_uri": uri, "member": member, "filename": filename, "error": error}


def read_source_item(item: dict[str, object], limits: SourceLimits, zip_cache: dict[str, object]) -> bytes:
    """The bytes of one item, refusing oversized or unsafe content with InvalidInput."""
    kind, uri, member = item["source_kind"], str(item["source_uri"]), str(item["member"])
    if kind == "url":
        return urls.fetch(uri, limits)
    if kind == "zip":
        return zips.read_member(uri, member, limits, zip_cache)
    path = Path(uri) / member if kind == "folder" else Path(uri)
    try:
        size = path.stat().st_size
        if size > limits.max_file_bytes:
            raise InvalidInput(f"file too large: {size:,} bytes exceeds {limits.max_file_bytes:,}")
        return path.read_bytes()
    except OSError as exc:
        raise InvalidInput(f"cannot read file: {exc.strerror or exc}") from exc
