"""Stage every ingest input in object storage, so workers read object keys and never the driver's disk.

Folders, single files and zip members are read here, in the driver, with the same caps as before
(size, zip bombs, unsafe names), and stored under `uploads/<dataset>/<batch>/`. URLs stay URLs: a worker
fetches them with the URL safety checks. Files a client uploaded through the API are already there; an
uploaded zip or URL list is expanded here like one given on the command line.
"""

from __future__ import annotations

import tempfile
import threading
import zipfile
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path, PurePosixPath
from typing import Any

from loraforge.errors import InvalidInput, LoraForgeError
from loraforge.sources import urls
from loraforge.sources.enumerate import SourceLimits, enumerate_sources, read_source_item
from loraforge.storage import ObjectStore
from loraforge.storage.keys import upload_key, upload_prefix

Item = dict[str, Any]
_READERS = 8
"""Files are read and stored by a few threads: the work is I/O, and S3 latency adds up one by one."""


def stage_sources(
    sources: Iterable[str], limits: SourceLimits, store: ObjectStore, *, dataset_id: str, batch: str
) -> list[Item]:
    """Ingest items for the sources, each carrying an object key (or a URL), in a stable order."""
    return _stage(enumerate_sources(sources, limits), limits, store, dataset_id=dataset_id, batch=batch)


def stage_uploaded(store: ObjectStore, limits: SourceLimits, *, dataset_id: str, batch: str) -> list[Item]:
    """Ingest items for a batch a client uploaded; zips and URL lists among them are expanded."""
    items: list[Item] = []
    expanded: list[Item] = []
    for info in list(store.list(upload_prefix(dataset_id, batch))):
        name = PurePosixPath(info.key).name
        if name.lower().endswith((".zip", ".txt", ".urls", ".lst")):
            expanded += _expand_upload(store, limits, info.key, name)
            store.delete(info.key)
        else:
            items.append(_item("upload", f"upload:{name}", name, key=info.key))
    # Expanded members get indexes after every uploaded file, so no key is reused.
    start = len(items) + 1_000_000
    return items + _stage(expanded, limits, store, dataset_id=dataset_id, batch=batch, start=start)


def _expand_upload(store: ObjectStore, limits: SourceLimits, key: str, name: str) -> list[Item]:
    with tempfile.TemporaryDirectory(prefix="loraforge-expand-") as folder:
        path = Path(folder) / name
        store.download(key, path)
        if name.lower().endswith(".zip") and not zipfile.is_zipfile(path):
            return [_item("upload", f"upload:{name}", name, error=f"bad zip archive {name}")]
        enumerated = enumerate_sources([str(path)], limits)
        # Zip members must be read while the temporary copy exists: read them now.
        out = []
        cache: dict[str, object] = {}
        try:
            for item in enumerated:
                item = {**item, "source_uri": f"upload:{name}"} if item["source_kind"] != "url" else item
                if item.get("error") or item["source_kind"] == "url":
                    out.append(item)
                    continue
                try:
                    data = read_source_item({**item, "source_uri": str(path)}, limits, cache)
                    out.append({**item, "data": data})
                except InvalidInput as exc:
                    out.append({**item, "error": str(exc)})
        finally:
            for archive in cache.values():
                archive.close()  # type: ignore[attr-defined]
        return out


def _stage(
    items: list[Item],
    limits: SourceLimits,
    store: ObjectStore,
    *,
    dataset_id: str,
    batch: str,
    start: int = 0,
) -> list[Item]:
    local = threading.local()
    caches: list[dict[str, object]] = []
    lock = threading.Lock()

    def zip_cache() -> dict[str, object]:
        cache = getattr(local, "cache", None)
        if cache is None:
            cache = local.cache = {}
            with lock:
                caches.append(cache)
        return cache

    def stage_one(pair: tuple[int, Item]) -> Item:
        index, item = pair
        out = _item(str(item["source_kind"]), str(item["source_uri"]), str(item["filename"]))
        if item.get("error"):
            return {**out, "error": item["error"]}
        if item["source_kind"] == "url":
            return {**out, "url": item["source_uri"]}
        try:
            key = upload_key(dataset_id, batch, start + index, _safe_name(str(item["filename"])))
            if not _linked(item, limits, store, key):
                data = item.get("data")
                if data is None:
                    data = read_source_item(item, limits, zip_cache())
                store.put(key, data)
            return {**out, "key": key}
        except LoraForgeError as exc:
            return {**out, "error": str(exc)}

    try:
        with ThreadPoolExecutor(max_workers=_READERS, thread_name_prefix="stage") as pool:
            return list(pool.map(stage_one, enumerate(items)))
    finally:
        for cache in caches:
            for archive in cache.values():
                archive.close()  # type: ignore[attr-defined]


def _linked(item: Item, limits: SourceLimits, store: ObjectStore, key: str) -> bool:
    """A plain file staged into a local store by hard link: no copy of its bytes (the common laptop case)."""
    link = getattr(store, "link_file", None)
    if link is None or item["source_kind"] not in ("folder", "file") or item.get("data") is not None:
        return False
    uri, member = str(item["source_uri"]), str(item["member"])
    path = Path(uri) / member if item["source_kind"] == "folder" else Path(uri)
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise InvalidInput(f"cannot read file: {exc.strerror or exc}") from exc
    if size > limits.max_file_bytes:
        raise InvalidInput(f"file too large: {size:,} bytes exceeds {limits.max_file_bytes:,}")
    return bool(path.is_file() and link(key, path))


def read_staged(item: Item, store: ObjectStore, limits: SourceLimits) -> bytes:
    """The bytes of a staged item, on a worker: an object of the store, or a URL fetched safely."""
    if item.get("key"):
        data = store.get(str(item["key"]))
        if len(data) > limits.max_file_bytes:
            raise InvalidInput(f"file too large: {len(data):,} bytes exceeds {limits.max_file_bytes:,}")
        return data
    if item.get("url"):
        return urls.fetch(str(item["url"]), limits)
    raise InvalidInput("nothing to read: the item has neither an object key nor a URL")


def remove_staged(store: ObjectStore, items: Iterable[Item]) -> None:
    """Delete the staged copies once their pictures are recorded (originals are stored separately)."""
    for item in items:
        if item.get("key"):
            store.delete(str(item["key"]))


def _item(kind: str, uri: str, filename: str, *, key: str | None = None, error: str | None = None) -> Item:
    return {
        "source_kind": kind,
        "source_uri": uri,
        "filename": filename,
        "key": key,
        "url": None,
        "error": error,
    }


def _safe_name(filename: str) -> str:
    name = PurePosixPath(filename.replace("\\", "/")).name.strip()
    cleaned = "".join(ch if ch.isalnum() or ch in "._-" else "_" for ch in name)[:100].strip(".")
    return cleaned or "file"
