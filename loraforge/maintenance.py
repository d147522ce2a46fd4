"""What the scheduled flows do, without Prefect: the integrity check with orphan collection, watched
sources, and the trainings the status sync looks at. `flows/maintenance.py` schedules them; the CLI runs
them on demand.
"""

from __future__ import annotations

import hashlib
import logging
import random
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from loraforge.catalog.models import Dataset, Derivative, Export, Image, Training
from loraforge.errors import InvalidInput, LoraForgeError, NotFound
from loraforge.stages.context import Context
from loraforge.storage import ObjectStore
from loraforge.storage.keys import export_key

log = logging.getLogger(__name__)

MANAGED_PREFIXES = ("originals/", "derived/", "exports/", "uploads/", "embeddings/")
"""Where LoRA Forge writes. Orphan collection never looks elsewhere, so a shared bucket is safe."""
CHECKED_ONLY = ("trainings/",)
"""Listed to check the rows that name them exist, never swept: trained weights outlive their dataset."""
PER_DATASET_PREFIXES = ("uploads/", "embeddings/")
"""Objects named by their dataset only (no row each): orphans once the dataset is gone."""
WATCH_KEY = "watch_sources"
"""Dataset setting listing the folders the source-sync flow re-ingests."""


class IntegrityProblems(LoraForgeError):
    """Catalog rows whose objects are missing or whose bytes no longer match their hash."""


@dataclass
class IntegrityReport:
    rows_checked: int = 0
    objects_listed: int = 0
    hashed: int = 0
    missing: list[dict[str, str]] = field(default_factory=list)
    """Rows whose object is not in the store: kind, id, key."""
    corrupt: list[dict[str, str]] = field(default_factory=list)
    """Originals whose bytes hash to something else: id, key, actual sha256."""
    orphans: list[str] = field(default_factory=list)
    """Objects no row names, older than the grace period: removed unless dry_run."""
    young_orphans: int = 0
    """Objects no row names yet, within the grace period (a write whose row is not committed yet)."""
    removed: list[str] = field(default_factory=list)
    dry_run: bool = False

    @property
    def ok(self) -> bool:
        return not self.missing and not self.corrupt

    def as_dict(self) -> dict[str, Any]:
        return asdict(self) | {"ok": self.ok}

    def problem_summary(self) -> str:
        parts = []
        if self.missing:
            shown = ", ".join(f"{m['kind']} {m['id']} ({m['key']})" for m in self.missing[:5])
            parts.append(f"{len(self.missing)} object(s) missing: {shown}")
        if self.corrupt:
            shown = ", ".join(f"image {c['id']} ({c['key']})" for c in self.corrupt[:5])
            parts.append(f"{len(self.corrupt)} original(s) do not match their hash: {shown}")
        return "; ".join(parts)


def check_integrity(
    session: Session,
    store: ObjectStore,
    *,
    sample: int,
    grace_s: float,
    dry_run: bool,
    rng: random.Random | None = None,
) -> IntegrityReport:
    """Every row's object exists; `sample` originals re-hash to their sha256; old orphans are removed.

    Rows are read before the store is listed: an object written after the rows were read is either young
    (kept by the grace period) or belongs to a row committed later, so nothing being written is removed.
    """
    report = IntegrityReport(dry_run=dry_run)
    required = _required_objects(session)
    referenced = {key for key, _, _ in required} | _optional_keys(session)
    dataset_ids = set(session.scalars(select(Dataset.id)))
    report.rows_checked = len(required)

    listed = {info.key: info for prefix in (*MANAGED_PREFIXES, *CHECKED_ONLY) for info in store.list(prefix)}
    report.objects_listed = len(listed)
    report.missing = [
        {"kind": kind, "id": row_id, "key": key} for key, kind, row_id in required if key not in listed
    ]

    images = [(row_id, key) for key, kind, row_id in required if kind == "image" and key in listed]
    chosen = (rng or random.Random()).sample(images, min(sample, len(images)))
    chosen_ids = [image_id for image_id, _ in chosen]
    sha_by_id: dict[str, str] = {
        row.id: row.sha256
        for row in session.execute(select(Image.id, Image.sha256).where(Image.id.in_(chosen_ids)))
    }
    for image_id, key in chosen:
        actual = _sha256(store, key)
        report.hashed += 1
        if actual != sha_by_id[image_id]:
            report.corrupt.append({"id": image_id, "key": key, "actual": actual})

    limit = datetime.now(UTC) - timedelta(seconds=grace_s)
    for key, info in sorted(listed.items()):
        if not key.startswith(MANAGED_PREFIXES) or key in referenced or _dataset_of(key) in dataset_ids:
            continue
        if info.modified is None or info.modified > limit:
            report.young_orphans += 1
            continue
        report.orphans.append(key)
    if not dry_run:
        for key in report.orphans:
            store.delete(key)
            report.removed.append(key)
    if report.orphans:
        log.info("%s %d orphan object(s)", "found" if dry_run else "removed", len(report.orphans))
    return report


def check_integrity_now(
    ctx: Context, *, dry_run: bool, sample: int | None = None, grace_s: float | None = None
) -> IntegrityReport:
    """`check_integrity` with the sample size and grace period from the settings unless given."""
    with ctx.catalog.session() as session:
        return check_integrity(
            session,
            ctx.store,
            sample=ctx.settings.integrity_sample if sample is None else sample,
            grace_s=ctx.settings.orphan_grace_s if grace_s is None else grace_s,
            dry_run=dry_run,
        )


def _required_objects(session: Session) -> list[tuple[str, str, str]]:
    """(key, kind, row id) of every object a row says exists."""
    found: list[tuple[str, str, str]] = []
    for image_id, key, thumb in session.execute(select(Image.id, Image.object_key, Image.thumbnail_key)):
        found.append((key, "image", image_id))
        if thumb:
            found.append((thumb, "thumbnail", image_id))
    for derivative_id, key in session.execute(select(Derivative.id, Derivative.object_key)):
        found.append((key, "derivative", derivative_id))
    completed = select(Export.id, Export.object_key).where(Export.status == "COMPLETED")
    for export_id, key in session.execute(completed):
        if key:
            found.append((key, "export", export_id))
    for training_id, key in session.execute(select(Training.id, Training.weights_key)):
        if key:  # trained weights are checked, never swept: a training row is their only index
            found.append((key, "weights", training_id))
    return found


def _optional_keys(session: Session) -> set[str]:
    """Keys rows name that need not exist yet (an export being written, its manifest): never orphans."""
    keys: set[str] = set()
    for export_id, dataset_id, key in session.execute(
        select(Export.id, Export.dataset_id, Export.object_key)
    ):
        keys.add(export_key(dataset_id, export_id, "json"))
        if key:
            keys.add(key)
    return keys


def _dataset_of(key: str) -> str | None:
    """The dataset id in `uploads/<id>/...` and `embeddings/<id>/...`; None for other keys."""
    for prefix in PER_DATASET_PREFIXES:
        if key.startswith(prefix):
            return key[len(prefix) :].split("/", 1)[0]
    return None


def _sha256(store: ObjectStore, key: str) -> str:
    digest = hashlib.sha256()
    stream = store.open(key)
    try:
        while chunk := stream.read(1 << 20):
            digest.update(chunk)
    finally:
        stream.close()
    return digest.hexdigest()


# --------------------------------------------------------------------------- watched sources


def watched_sources(dataset: Dataset) -> list[str]:
    return list((dataset.settings or {}).get(WATCH_KEY, []))


def watch(dataset: Dataset, folders: Sequence[str | Path]) -> list[str]:
    """Opt a dataset into the source-sync flow for these folders (absolute, existing); returns the list."""
    current = watched_sources(dataset)
    for folder in folders:
        path = Path(folder).expanduser().resolve()
        if not path.is_dir():
            raise InvalidInput(f"cannot watch {folder}: not a folder")
        if str(path) not in current:
            current.append(str(path))
    dataset.settings = {**(dataset.settings or {}), WATCH_KEY: current}
    return current


def unwatch(dataset: Dataset, folders: Iterable[str | Path]) -> list[str]:
    current = watched_sources(dataset)
    for folder in folders:
        path = str(Path(folder).expanduser().resolve())
        if path not in current:
            raise NotFound(f"{dataset.name} does not watch {path}")
        current.remove(path)
    dataset.settings = {**(dataset.settings or {}), WATCH_KEY: current}
    return current


def datasets_with_watched_sources(session: Session) -> list[tuple[str, list[str]]]:
    """(dataset id, folders) of every dataset that opted in."""
    return [
        (dataset.id, watched_sources(dataset))
        for dataset in session.scalars(select(Dataset).order_by(Dataset.created_at))
        if watched_sources(dataset)
    ]
