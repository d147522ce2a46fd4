"""The ObjectStore protocol: the narrow seam between LoRA Forge and wherever bytes live."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import BinaryIO, Protocol, runtime_checkable


@dataclass(frozen=True)
class ObjectInfo:
    key: str
    size: int
    etag: str | None = None
    modified: datetime | None = None
    """Last write, timezone-aware, where the store lists it (the integrity check ages orphans by it)."""


@dataclass(frozen=True)
class StoreConfig:
    """Picklable description of a store, so Ray workers can open their own client."""

    url: str
    endpoint: str | None = None
    access_key: str | None = None
    secret_key: str | None = None
    secure: bool = True
    region: str | None = None
    retries: int = 5
    """Retries of a call after a transient error (loraforge.storage.retry says which errors are)."""
    retry_backoff_s: float = 0.5
    retry_max_backoff_s: float = 8.0
    timeout_s: float = 60.0

    @classmethod
    def from_settings(cls, settings: object) -> StoreConfig:
        from loraforge.config import Settings

        assert isinstance(settings, Settings)
        return cls(
            url=settings.resolved_storage_url,
            endpoint=settings.s3_endpoint,
            access_key=settings.s3_access_key,
            secret_key=settings.s3_secret_key,
            secure=settings.s3_secure,
            region=settings.s3_region,
            retries=settings.storage_retries,
            retry_backoff_s=settings.storage_retry_backoff_s,
            retry_max_backoff_s=settings.storage_retry_max_backoff_s,
            timeout_s=settings.storage_timeout_s,
        )


@runtime_checkable
class ObjectStore(Protocol):
    """Bytes by key. Keys are '/'-separated relative paths; writes are atomic per object."""

    def put(
        self,
        key: str,
        data: bytes | BinaryIO,
        *,
        length: int | None = None,
        content_type: str = "application/octet-stream",
    ) -> ObjectInfo:
        """Store bytes or a stream (read to its end; `length` when known)."""

    def put_file(self, key: str, path: Path, *, content_type: str = "application/octet-stream") -> ObjectInfo:
        """Store a local file, streamed."""

    def get(self, key: str) -> bytes:
        """All bytes of an object; NotFound when absent."""

    def open(self, key: str) -> BinaryIO:
        """A readable stream of an object; the caller closes it."""

    def download(self, key: str, path: Path) -> None:
        """Copy an object to a local file, streamed."""

    def stat(self, key: str) -> ObjectInfo:
        """Size and etag; NotFound when absent."""

    def exists(self, key: str) -> bool: ...

    def delete(self, key: str) -> None:
        """Remove an object; absent objects are ignored."""

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """Every object whose key starts with prefix, in key order."""

    def presigned_url(self, key: str, *, expires_s: int = 3600, method: str = "GET") -> str:
        """A URL that grants temporary access without credentials."""


def check_key(key: str) -> str:
    """Refuse keys that could escape the store's root or confuse S3."""
    parts = key.split("/")
    if not key or key.startswith("/") or any(part in ("", ".", "..") for part in parts):
        from loraforge.errors import InvalidInput

        raise InvalidInput(f"invalid object key {key!r}")
    return key
