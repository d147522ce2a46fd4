"""Object storage: a local folder by default, S3/MinIO when configured."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urlparse

from loraforge.storage.base import ObjectInfo, ObjectStore, StoreConfig

__all__ = ["ObjectInfo", "ObjectStore", "StoreConfig", "open_store"]


def open_store(config: StoreConfig) -> ObjectStore:
    """Build the store a config describes."""
    if config.url.startswith("file://"):
        from loraforge.storage.local import LocalStore

        return LocalStore(Path(unquote(urlparse(config.url).path)))
    if config.url.startswith("s3://"):
        from loraforge.storage.s3 import S3Store

        return S3Store(config)
    from loraforge.errors import ConfigError

    raise ConfigError(f"LORAFORGE_STORAGE_URL: unsupported storage URL {config.url!r}")
