"""Ingest: read, validate, hash and store each picture (worker side); record new images (driver side)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any, cast

from sqlalchemy import select
from sqlalchemy.orm import Session

from loraforge.catalog.models import Image
from loraforge.errors import InvalidInput, StorageError
from loraforge.imaging.decode import decode, image_facts, open_checked
from loraforge.imaging.hashes import phash_hex, sha256_hex
from loraforge.imaging.thumbnail import draft_size_for, encode_thumbnail, thumbnail_image
from loraforge.sources import SourceLimits
from loraforge.sources.staging import read_staged, remove_staged, stage_sources, stage_uploaded
from loraforge.stages.base import Item, Resources, Result, error_result
from loraforge.stages.context import Context
from loraforge.stages.faults import failed, incomplete_run, is_not_stored
from loraforge.stages.options import IngestOptions
from loraforge.storage import ObjectStore, StoreConfig, open_store
from loraforge.storage.keys import original_key, thumbnail_key

log = logging.getLogger(__name__)


@dataclass
class IngestStage:
    """Worker side of ingest. Items come from loraforge.sources.staging: object keys or URLs, never paths."""

    store_config: StoreConfig
    limits: SourceLimits
    max_pixels: int
    known_sha256: frozenset[str] = frozenset()
    """Bytes the dataset already holds: such items are recognised by hash and not decoded again."""

    name: str = "ingest"
    version: int = 1
    resources: Resources = field(default_factory=lambda: Resources(num_cpus=1))
    batch_size: int = 16
    stateful: bool = False

    def __post_init__(self) -> None:
        self._store: ObjectStore | None = None

    def setup(self) -> None:
        if self._store is None:
            self._store = open_store(self.store_config)

    def process_batch(self, items: list[Item]) -> list[Result]:
        self.setup()
        return [self._process(item) for item in items]

    def _process(self, item: Item) -> Result:
        if item.get("error"):
            return item
        assert self._store is not None
        try:
            data = read_staged(item, self._store, self.limits)
            sha256 = sha256_hex(data)
            if sha256 in self.known_sha256:
                return {**item, "sha256": sha256, "already_present": True, "error": None}
            return {**item, **self._store_picture(data, sha256), "already_present": False, "error": None}
        except (InvalidInput, StorageError) as exc:
            # The picture's fault (content) or the store's (unavailable after retries, or refusing):
            # `failed` marks which, and a store outage makes the shard run again.
            return failed(item, exc)
        except Exception as exc:  # noqa: BLE001 - one bad picture must never fail the batch
            log.exception("ingest failed for %s", item.get("filename"))
            return error_result(item, f"unexpected error: {exc!r}")

    def _store_picture(self, data: bytes, sha256: str) -> dict[str, Any]:
        assert self._store is not None
        opened = open_checked(data, max_pixels=self.max_pixels)
        facts = image_facts(opened)
        # One reduced-size decode serves the decode check, the thumbnail and the perceptual hash.
        thumb = thumbnail_image(decode(opened, draft_size=draft_size_for(*opened.size)))
        thumb_key = thumbnail_key(sha256)
        # Objects first, rows later: a crash leaves at worst an unreferenced object.
        if not self._store.exists(thumb_key):
            self._store.put(thumb_key, encode_thumbnail(thumb), content_type="image/webp")
        key = original_key(sha256)
        if not self._store.exists(key):
            self._store.put(key, data, content_type=f"image/{facts.format}")
        return {
            "sha256": sha256,
            "object_key": key,
            "thumbnail_key": thumb_key,
            "width": facts.width,
            "height": facts.height,
            "format": facts.format,
            "bytes": len(data),
            "phash": phash_hex(thumb),
        }


@dataclass
class IngestSummary:
    """What one ingest run did, per outcome, with one reason per failure."""

    found: int = 0
    added: list[str] = field(default_factory=list)
    duplicates: list[dict[str, str]] = field(default_factory=list)
    already_present: list[str] = field(default_factory=list)
    failed: list[dict[str, str]] = field(default_factory=list)
    """Pictures refused for what they are (corrupt, too large...), with the reason."""
    not_stored: list[Result] = field(default_factory=list)
    """Results of pictures the object store did not take: the run fails naming them."""

    def merge(self, other: IngestSummary) -> None:
        self.found += other.found
        self.added += other.added
        self.duplicates += other.duplicates
        self.already_present += other.already_present
        self.failed += other.failed
        self.not_stored += other.not_stored

    def to_dict(self) -> dict[str, Any]:
        return {
            "found": self.found,
            "added": len(self.added),
            "exact_duplicates": len(self.duplicates),
            "already_present": len(self.already_present),
            "failed": len(self.failed),
            "duplicate_files": self.duplicates,
            "failures": self.failed,
        }


def existing_sha256(session: Session, dataset_id: str) -> dict[str, str]:
    """sha256 -> original filename of every image the dataset holds."""
    rows = session.execute(
        select(Image.sha256, Image.original_filename).where(Image.dataset_id == dataset_id)
    )
    return {sha: name for sha, name in rows}


def record_ingest(session: Session, results: Sequence[Result], *, dataset_id: str) -> IngestSummary:
    """Insert rows for new pictures in one batch; the same bytes enter a dataset once.

    Safe to call again with the same results (a retried shard): what is already there is skipped.
    """
    summary = IngestSummary(found=len(results))
    known = existing_sha256(session, dataset_id)
    new_rows = []
    for result in results:
        filename = str(result["filename"])
        if result.get("error") and is_not_stored(result):
            summary.not_stored.append(result)
            continue
        if result.get("error"):
            summary.failed.append({"filename": filename, "reason": str(result["error"])})
            continue
        sha256 = str(result["sha256"])
        if sha256 in known:
            if known[sha256] == filename:
                summary.already_present.append(filename)
            else:
                summary.duplicates.append({"filename": filename, "duplicate_of": known[sha256]})
            continue
        known[sha256] = filename
        summary.added.append(filename)
        new_rows.append(
            Image(
                dataset_id=dataset_id,
                sha256=sha256,
                object_key=result["object_key"],
                thumbnail_key=result["thumbnail_key"],
                original_filename=filename,
                source_kind=result["source_kind"],
                source_uri=result["source_uri"],
                width=result["width"],
                height=result["height"],
                format=result["format"],
                bytes=result["bytes"],
                phash=result["phash"],
                status="pending",
            )
        )
    session.add_all(new_rows)
    session.flush()
    return summary


def stage_inputs(ctx: Context, dataset_id: str, options: IngestOptions, *, batch: str) -> list[Item]:
    """Copy every input into object storage (DESIGN: workers read objects, never the driver's disk).

    Raises IncompleteRun, naming the inputs, when the store would not take some of them: they would
    otherwise be reported as bad pictures in a run that completed.
    """
    log_store = _WriteLog(ctx.store)
    store = cast(ObjectStore, log_store)
    uploaded: list[Item] = []
    copied: list[Item] = []
    if options.upload_batch:
        uploaded = stage_uploaded(store, ctx.source_limits, dataset_id=dataset_id, batch=options.upload_batch)
    if options.sources:
        copied = stage_sources(options.sources, ctx.source_limits, store, dataset_id=dataset_id, batch=batch)
    if log_store.failed:
        # The copies made here go; a client's uploads stay, so the same batch can be ingested again.
        remove_staged_inputs(ctx.store, copied)
        # A staged key ends in the input's file name (made safe): enough for the user to find it.
        not_staged = [
            failed({"filename": PurePosixPath(key).name}, exc) for key, exc in log_store.failed.items()
        ]
        raise incomplete_run(
            "ingest stopped before any picture was processed: the object store did not take these inputs",
            not_staged,
            advice="Nothing was added; run the ingest again once the store answers.",
        )
    return uploaded + copied


def check_all_stored(summary: IngestSummary) -> None:
    """Fail the run when the store did not take some pictures, naming them (content failures do not)."""
    if summary.not_stored:
        raise incomplete_run(
            "ingest: the object store did not take these pictures",
            summary.not_stored,
            advice="The other pictures are recorded; run the ingest again to add these.",
        )


def remove_staged_inputs(store: ObjectStore, results: Sequence[Result]) -> None:
    """Delete a recorded shard's staged inputs; a store failing now leaves garbage, not a failed run
    (the integrity check removes unreferenced objects once old)."""
    try:
        remove_staged(store, results)
    except StorageError as exc:
        log.warning("staged inputs of a recorded shard were not all removed: %s", exc)


class _WriteLog:
    """An ObjectStore that remembers the keys it could not write: staging turns every error into an item
    error, and the ingest must tell a store that failed from an input that was bad."""

    def __init__(self, store: ObjectStore) -> None:
        self._store = store
        self.failed: dict[str, StorageError] = {}

    def put(self, key: str, data: Any, **options: Any) -> Any:
        try:
            return self._store.put(key, data, **options)
        except StorageError as exc:
            self.failed[key] = exc
            raise

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)
