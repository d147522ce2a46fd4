"""Where an export's files go: a directory, or a zip streamed into a file object one member at a time."""

from __future__ import annotations

import os
import zipfile
from pathlib import Path, PurePosixPath
from typing import BinaryIO, Protocol

from loraforge.errors import Conflict, InvalidInput, StorageError

# A fixed member time makes two exports of the same data byte-identical archives.
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)


class Sink(Protocol):
    """Receives whole files by relative POSIX name; `close` finishes the output."""

    def write(self, name: str, data: bytes, *, compress: bool) -> None: ...

    def close(self) -> None: ...


def check_member_name(name: str) -> str:
    """Refuse names that would escape the export root or that zip readers treat oddly."""
    path = PurePosixPath(name)
    if not name or path.is_absolute() or ".." in path.parts or "\\" in name or name.endswith("/"):
        raise InvalidInput(f"unsafe file name in export: {name!r}")
    return str(path)


class DirectorySink:
    """Writes files under a root folder, which must be missing or empty so no stale file survives."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)
        if self.root.exists() and any(self.root.iterdir()):
            raise Conflict(f"export directory {self.root} is not empty")
        self.root.mkdir(parents=True, exist_ok=True)
        self._written: set[str] = set()

    def write(self, name: str, data: bytes, *, compress: bool) -> None:
        name = check_member_name(name)
        if name in self._written:
            raise Conflict(f"{name} written twice in one export")
        target = self.root / name
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
        except OSError as exc:
            raise StorageError(f"cannot write {target}: {exc}") from exc
        self._written.add(name)

    def close(self) -> None:
        """Nothing to finish: every file is complete once written."""

    def __enter__(self) -> DirectorySink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class ZipSink:
    """Streams members into a zip: images STORED (already compressed), text DEFLATED.

    Only one member's bytes are held at a time, so memory stays flat however large the archive grows. The
    target is a path (owned and closed here) or a writable binary file object the caller owns, such as a
    temporary file later uploaded to object storage; a non-seekable stream works too (zipfile then writes
    data descriptors).
    """

    def __init__(
        self, target: Path | str | BinaryIO, *, compresslevel: int = 6, comment: bytes = b""
    ) -> None:
        if isinstance(target, (str, os.PathLike)):
            self._file: BinaryIO = open(target, "wb")  # noqa: SIM115 - closed in close()
            self._owns_file = True
        else:
            self._file = target
            self._owns_file = False
        self._zip = zipfile.ZipFile(self._file, "w", allowZip64=True)
        self._zip.comment = comment
        self._compresslevel = compresslevel
        self._written: set[str] = set()
        self._closed = False

    def write(self, name: str, data: bytes, *, compress: bool) -> None:
        name = check_member_name(name)
        if name in self._written:
            raise Conflict(f"{name} written twice in one export")
        info = zipfile.ZipInfo(name, date_time=_ZIP_TIME)
        info.external_attr = 0o644 << 16
        info.compress_type = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
        try:
            self._zip.writestr(info, data, compresslevel=self._compresslevel if compress else None)
        except OSError as exc:
            raise StorageError(f"cannot write {name} into the zip: {exc}") from exc
        self._written.add(name)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            self._zip.close()
            if self._owns_file:
                self._file.close()
            else:
                self._file.flush()
        except OSError as exc:
            raise StorageError(f"cannot finish the zip: {exc}") from exc

    def __enter__(self) -> ZipSink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
