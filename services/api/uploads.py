"""Save multipart uploads into a private temporary folder that the ingest flow then reads."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path, PurePosixPath

from fastapi import UploadFile

from loraforge.errors import InvalidInput

CHUNK_BYTES = 1024 * 1024


def safe_name(filename: str | None, index: int, taken: set[str]) -> str:
    """The upload's base name (never a path), made unique within the folder."""
    name = PurePosixPath((filename or "").replace("\\", "/")).name.strip() or f"upload-{index}"
    if name in {".", ".."}:
        name = f"upload-{index}"
    while name in taken:
        name = f"{index}-{name}"
    taken.add(name)
    return name


def save_uploads(files: list[UploadFile], *, max_file_bytes: int) -> tuple[Path, list[Path]]:
    """Copy every upload into a new folder; refuses an empty request or a file over the size limit.

    Returns the folder (to remove afterwards) and the saved files, which ingest reads one by one so
    that an uploaded zip is unpacked like a zip given on the command line.
    """
    if not files:
        raise InvalidInput("no files uploaded")
    folder = Path(tempfile.mkdtemp(prefix="loraforge-upload-"))
    taken: set[str] = set()
    saved: list[Path] = []
    try:
        for index, upload in enumerate(files):
            target = folder / safe_name(upload.filename, index, taken)
            _copy_limited(upload, target, max_file_bytes=max_file_bytes)
            saved.append(target)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return folder, saved


def _copy_limited(upload: UploadFile, target: Path, *, max_file_bytes: int) -> None:
    written = 0
    with target.open("wb") as out:
        while chunk := upload.file.read(CHUNK_BYTES):
            written += len(chunk)
            if written > max_file_bytes:
                raise InvalidInput(f"{target.name}: file too large (over {max_file_bytes} bytes)")
            out.write(chunk)
