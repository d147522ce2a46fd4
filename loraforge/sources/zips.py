"""Safe zip reading: no path traversal, capped sizes and compression ratios, streamed decompression."""

from __future__ import annotations

import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

from loraforge.errors import InvalidInput
from loraforge.imaging.decode import IMAGE_EXTENSIONS, sniff_format

if TYPE_CHECKING:
    from loraforge.sources.enumerate import SourceLimits

_CHUNK = 1024 * 1024
_SKIPPED_PREFIXES = ("__MACOSX/",)


def enumerate_zip(
    path: Path, limits: SourceLimits, make_item: Callable[..., dict[str, object]]
) -> Iterator[dict[str, object]]:
    """Items for the zip's picture entries; unsafe entries come back already failed."""
    uri = str(path.resolve())
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise InvalidInput(f"bad zip archive {path.name}: {exc}") from exc
    total = 0
    with archive:
        for info in archive.infolist():
            name = info.filename
            if (
                info.is_dir()
                or name.startswith(_SKIPPED_PREFIXES)
                or PurePosixPath(name).name.startswith(".")
            ):
                continue
            error = unsafe_reason(name) or _size_reason(info, limits)
            total += info.file_size
            if error is None and total > limits.max_zip_total_bytes:
                error = f"zip unpacks to more than {limits.max_zip_total_bytes:,} bytes"
            if error is None and not _looks_like_image(archive, info):
                continue
            yield make_item("zip", uri, name, name, error)


def unsafe_reason(name: str) -> str | None:
    """Why an entry name could escape the extraction root, or None when it is safe."""
    normalised = name.replace("\\", "/")
    if normalised.startswith("/") or (len(normalised) > 1 and normalised[1] == ":"):
        return f"unsafe zip entry {name!r}: absolute path"
    if ".." in PurePosixPath(normalised).parts:
        return f"unsafe zip entry {name!r}: path traversal"
    return None


def _size_reason(info: zipfile.ZipInfo, limits: SourceLimits) -> str | None:
    ratio = info.file_size / max(info.compress_size, 1)
    if info.file_size > _CHUNK and ratio > limits.max_zip_ratio:
        return f"zip bomb suspected: entry expands {ratio:,.0f}x (limit {limits.max_zip_ratio:,.0f}x)"
    if info.file_size > limits.max_file_bytes:
        return f"zip entry too large: {info.file_size:,} bytes exceeds {limits.max_file_bytes:,}"
    return None


def _looks_like_image(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> bool:
    if PurePosixPath(info.filename).suffix.lower() in IMAGE_EXTENSIONS:
        return True
    try:
        with archive.open(info) as stream:
            return sniff_format(stream.read(16)) is not None
    except Exception:  # noqa: BLE001 - an unreadable entry is simply not a picture
        return False


def read_member(uri: str, member: str, limits: SourceLimits, cache: dict[str, object]) -> bytes:
    """Decompress one entry, stopping as soon as it outgrows what its header promised or our caps."""
    reason = unsafe_reason(member)
    if reason:
        raise InvalidInput(reason)
    archive = cache.get(uri)
    if archive is None:
        try:
            archive = cache[uri] = zipfile.ZipFile(uri)
        except (zipfile.BadZipFile, OSError) as exc:
            raise InvalidInput(f"bad zip archive: {exc}") from exc
    assert isinstance(archive, zipfile.ZipFile)
    try:
        info = archive.getinfo(member)
        cap = min(limits.max_file_bytes, max(info.compress_size, 1) * int(limits.max_zip_ratio) + _CHUNK)
        chunks, size = [], 0
        with archive.open(info) as stream:
            while chunk := stream.read(_CHUNK):
                size += len(chunk)
                if size > cap:
                    raise InvalidInput(f"zip entry {member!r} expands beyond {cap:,} bytes (zip bomb?)")
                chunks.append(chunk)
        return b"".join(chunks)
    except (zipfile.BadZipFile, KeyError, OSError, EOFError) as exc:
        raise InvalidInput(f"cannot read zip entry {member!r}: {exc}") from exc
