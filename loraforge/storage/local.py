"""ObjectStore on a local folder: atomic writes by temp file + rename; the embedded default."""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

from loraforge.errors import NotFound, StorageError
from loraforge.storage.base import ObjectInfo, check_key

_CHUNK = 1024 * 1024


class LocalStore:
    """Objects as files under a root folder; keys map to relative paths."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def _path(self, key: str) -> Path:
        return self.root / check_key(key)

    def put(
        self,
        key: str,
        data: bytes | BinaryIO,
        *,
        length: int | None = None,
        content_type: str = "application/octet-stream",
    ) -> ObjectInfo:
        path = self._path(key)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            digest = hashlib.md5(usedforsecurity=False)
            fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
            size = 0
            try:
                with os.fdopen(fd, "wb") as out:
                    for chunk in _chunks(data):
                        out.write(chunk)
                        digest.update(chunk)
                        size += len(chunk)
                os.replace(tmp_name, path)
            except BaseException:
                Path(tmp_name).unlink(missing_ok=True)
                raise
        except OSError as exc:
            raise StorageError(f"cannot write {key}: {exc}") from exc
        return ObjectInfo(key=key, size=size, etag=digest.hexdigest())

    def put_file(self, key: str, path: Path, *, content_type: str = "application/octet-stream") -> ObjectInfo:
        with open(path, "rb") as stream:
            return self.put(key, stream, content_type=content_type)

    def link_file(self, key: str, path: Path) -> bool:
        """Take a local file in as a hard link (no copy); False when it cannot be (another file system).

        For short-lived objects only (staged inputs): the object shares the file's bytes until deleted.
        """
        target = self._path(key)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            os.link(path, target)
        except OSError:
            return False
        return True

    def get(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError as exc:
            raise NotFound(f"object {key} not found") from exc
        except OSError as exc:
            raise StorageError(f"cannot read {key}: {exc}") from exc

    def open(self, key: str) -> BinaryIO:
        try:
            return open(self._path(key), "rb")
        except FileNotFoundError as exc:
            raise NotFound(f"object {key} not found") from exc

    def download(self, key: str, path: Path) -> None:
        with self.open(key) as source, open(path, "wb") as target:
            shutil.copyfileobj(source, target, _CHUNK)

    def stat(self, key: str) -> ObjectInfo:
        try:
            size = self._path(key).stat().st_size
        except FileNotFoundError as exc:
            raise NotFound(f"object {key} not found") from exc
        return ObjectInfo(key=key, size=size)

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        if not self.root.exists():
            return
        found = []
        for path in self.root.rglob("*"):
            if path.is_file() and not path.name.startswith(".tmp-"):
                key = path.relative_to(self.root).as_posix()
                if key.startswith(prefix):
                    info = path.stat()
                    modified = datetime.fromtimestamp(info.st_mtime, tz=UTC)
                    found.append(ObjectInfo(key=key, size=info.st_size, modified=modified))
        yield from sorted(found, key=lambda info: info.key)

    def presigned_url(self, key: str, *, expires_s: int = 3600, method: str = "GET") -> str:
        # A local folder has no server to sign for; a file URL is what a local reader can open.
        return self._path(key).resolve().as_uri()


def _chunks(data: bytes | BinaryIO) -> Iterator[bytes]:
    if isinstance(data, bytes | bytearray | memoryview):
        yield bytes(data)
        return
    while chunk := data.read(_CHUNK):
        yield chunk
