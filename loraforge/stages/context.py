"""The runtime context of a driver process: settings, catalog and object store, built once."""

from __future__ import annotations

import threading
from dataclasses import dataclass

from loraforge.catalog import Catalog
from loraforge.catalog.db import PoolSize
from loraforge.config import Settings, get_settings
from loraforge.sources import SourceLimits
from loraforge.storage import ObjectStore, StoreConfig, open_store

_lock = threading.Lock()
_catalogs: dict[str, Catalog] = {}


@dataclass(frozen=True)
class Context:
    settings: Settings
    catalog: Catalog
    store: ObjectStore
    store_config: StoreConfig

    @property
    def source_limits(self) -> SourceLimits:
        return source_limits(self.settings)


def source_limits(settings: Settings) -> SourceLimits:
    """The size, zip and URL limits of reading sources, from the settings."""
    return SourceLimits(
        max_file_bytes=settings.max_file_bytes,
        max_zip_ratio=settings.max_zip_ratio,
        max_zip_total_bytes=settings.max_zip_total_bytes,
        url_timeout_s=settings.url_timeout_s,
        url_max_redirects=settings.url_max_redirects,
        url_deadline_s=settings.url_deadline_s,
        allow_private_urls=settings.allow_private_urls,
    )


def open_context(settings: Settings | None = None) -> Context:
    """A context for the given (or process-wide) settings; one catalog engine per URL per process."""
    settings = settings or get_settings()
    url = settings.resolved_catalog_url
    with _lock:
        catalog = _catalogs.get(url)
        if catalog is None:
            pool = PoolSize(
                size=settings.catalog_pool_size,
                max_overflow=settings.catalog_max_overflow,
                timeout_s=settings.catalog_pool_timeout_s,
            )
            catalog = _catalogs[url] = Catalog(url, pool=pool)
    store_config = StoreConfig.from_settings(settings)
    return Context(
        settings=settings, catalog=catalog, store=open_store(store_config), store_config=store_config
    )


def reset_contexts() -> None:
    """Forget cached catalogs (tests switch databases between cases)."""
    with _lock:
        for catalog in _catalogs.values():
            catalog.dispose()
        _catalogs.clear()
