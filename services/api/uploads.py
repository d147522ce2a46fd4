"""Stream multipart uploads straight into object storage, under the batch an ingest run then reads."""

from __future__ import annotations

import uuid
from pathlib import PurePosixPath

from fastapi import UploadFile

from loraforge.errors import InvalidInput
from loraforge.storage import ObjectStore
from loraforge.storage.keys import upload_key

MAX_NAME_CHARS = 200


def safe_name(filename: str | None, index: int) -> str:
    """The upload's base name (never a path), printable, at most 200 characters."""
    name = PurePosixPath((filename or "").replace("\\", "/")).name.strip()
    name = "".join(ch if ch.isprintable() and ch not in "/\\" else "_" for ch in name)[:MAX_NAME_CHARS]
    if name in {"", ".", ".."}:
        name = f"upload-{index}"
    return name


def store_uploads(
    files: list[UploadFile], store: ObjectStore, *, dataset_id: str, max_file_bytes: int
) -> tuple[str, list[str]]:
    """Store every upload under a new batch; returns the batch id and the stored names.

    A file over the size limit fails the request before anything of it is stored; what was stored for
    the request is removed again, so a refused request leaves nothing behind.
    """
    if not files:
        raise InvalidInput("no files uploaded")
    batch = uuid.uuid4().hex
    stored: list[str] = []
    names: list[str] = []
    try:
        for index, upload in enumerate(files):
            name = safe_name(upload.filename, index)
            if upload.size is not None and upload.size > max_file_bytes:
                raise InvalidInput(f"{name}: file too large (over {max_file_bytes} bytes)")
            key = upload_key(dataset_id, batch, index, _key_name(name))
            upload.file.seek(0)
            store.put(key, _Capped(upload.file, max_file_bytes, name), length=upload.size)
            stored.append(key)
            names.append(name)
    except BaseException:
        for key in stored:
            store.delete(key)
        raise
    return batch, names


def _key_name(name: str) -> str:
    """An object-key-safe version of the name; the staged item keeps the name from the key's last part."""
    cleaned = "".join(ch if ch.isalnum() or ch in "._-" else "_" for ch in name).strip(".")
    return cleaned[:MAX_NAME_CHARS] or "file"


class _Capped:
    """A read-only stream that refuses to give more than `limit` bytes."""

    def __init__(self, stream: object, limit: int, name: str) -> None:
        self.stream, self.limit, self.name, self.read_bytes = stream, limit, name, 0

    def read(self, size: int = -1) -> bytes:
        chunk: bytes = self.stream.read(size)  # type: ignore[attr-defined]
        self.read_bytes += len(chunk)
        if self.read_bytes > self.limit:
            raise InvalidInput(f"{self.name}: file too large (over {self.limit} bytes)")
        return chunk
