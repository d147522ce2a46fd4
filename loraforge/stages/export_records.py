"""Export records in the catalog: planning what a version holds, previewing it, listing stored versions."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import PurePosixPath
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from loraforge.catalog.models import Caption, Dataset, Derivative, Export, Face, Image
from loraforge.catalog.queries import current_buckets, dataset_images
from loraforge.errors import Conflict, NotFound
from loraforge.exporters import DatasetInfo, ExportItem, ExportSpec, ValidationReport, safe_stem, validate
from loraforge.imaging.buckets import Bucket, upscale_needed
from loraforge.sources.search.records import provenance_by_image
from loraforge.stages.bucket_records import BUCKET_KIND, trainer_run_key
from loraforge.storage import ObjectStore

COMPLETED, FAILED, PENDING = "COMPLETED", "FAILED", "PENDING"
CURATED_STATUSES = ("kept", "rejected", "duplicate")
EXCLUDED_STATUSES = ("rejected", "duplicate")
# ExportSpec fields an option may set; the rest come from the dataset or are structural.
_FIXED_SPEC_FIELDS = {"format", "reg_items", "options"}
_SPEC_FIELDS = {f.name for f in fields(ExportSpec)} - _FIXED_SPEC_FIELDS


@dataclass(frozen=True)
class ExportRequest:
    """What the user asked for: options naming ExportSpec fields set them, others go to spec.options."""

    format: str
    repeats: int | None = None
    include_rejected: bool = False
    options: Mapping[str, Any] = field(default_factory=dict)
    max_upscale: float | None = None
    """Leave out pictures whose bucket picture enlarges them more than this (None: none are left out)."""


@dataclass
class ExportPlan:
    """Everything an export needs, read from the catalog in one session."""

    dataset: DatasetInfo
    spec: ExportSpec
    items: list[ExportItem]
    sources: list[dict[str, Any]]
    """Per image: its original, the processed file used (if any) and the caption row, for the manifest."""
    left_out: int = 0
    """Pictures of the dataset this export does not take (rejected, duplicates, over --max-upscale)."""
    upscaled: list[dict[str, str]] = field(default_factory=list)
    """{"filename", "reason"} of each picture left out for needing more than --max-upscale."""


def plan_export(session: Session, dataset: Dataset, request: ExportRequest, store: ObjectStore) -> ExportPlan:
    """Pick the images (kept, or pending if never curated), their active captions and bucket derivatives:
    those of the last bucket run for this trainer and model if there was one, else the current ones."""
    images = dataset_images(session, dataset.id, statuses=_export_statuses(session, dataset, request))
    ids = [image.id for image in images]
    captions = _active_captions(session, ids)
    run = trainer_run(dataset, request.format)
    if run is not None:
        derivatives = _derivatives(session, ids, run["params_hash"])
    else:
        derivatives = current_buckets(session, dataset, ids)
    faces = _faces(session, ids)
    provenance = provenance_by_image(session, ids)
    limit = request.max_upscale
    items, sources, upscaled = [], [], []
    for image in images:
        caption = captions.get(image.id)
        derived = derivatives.get(image.id)
        factor = _upscale(image, derived)
        if limit is not None and factor > limit + 1e-9:
            reason = f"needs upscale {factor:.2f}, over --max-upscale {limit:g} (--allow-upscale exports it)"
            upscaled.append({"filename": image.original_filename, "reason": reason})
            continue
        items.append(_item(image, caption, derived, faces.get(image.id), store, provenance.get(image.id)))
        sources.append(
            {
                "image_id": image.id,
                "original_sha256": image.sha256,
                "original_filename": image.original_filename,
                "status": image.status,
                "derivative": None
                if derived is None
                else {
                    "object_key": derived.object_key,
                    "params_hash": derived.params_hash,
                    "width": derived.width,
                    "height": derived.height,
                },
                "caption_id": caption.id if caption else None,
                "provenance": provenance.get(image.id),
            }
        )
    info = DatasetInfo(
        dataset.id, dataset.name, dataset.trigger_word, dataset.class_word, dataset.target_model
    )
    stored = session.scalar(select(func.count()).select_from(Image).where(Image.dataset_id == dataset.id))
    left_out = (stored or 0) - len(items)
    return ExportPlan(info, _spec(dataset, request), items, sources, left_out=left_out, upscaled=upscaled)


def _upscale(image: Image, derived: Derivative | None) -> float:
    """How much the bucket picture enlarges the original (1.0 without one: the exporter then validates)."""
    if derived is None or not image.width or not image.height:
        return 1.0
    return upscale_needed(image.width, image.height, Bucket(derived.width, derived.height))


def preview_export(
    session: Session, dataset: Dataset, request: ExportRequest, store: ObjectStore, *, strict: bool = False
) -> ValidationReport:
    """The validation report of what an export would write now; strict raises InvalidInput as export does."""
    plan = plan_export(session, dataset, request, store)
    return validate(plan.items, plan.spec, strict=strict)


def trainer_run(dataset: Dataset, trainer: str) -> dict[str, Any] | None:
    """The last bucket run cut for this trainer and the dataset's model (params_hash, resolution), if any."""
    runs = (dataset.settings or {}).get("bucket_runs") or {}
    run = runs.get(trainer_run_key(trainer, dataset.target_model))
    return run if isinstance(run, dict) else None


def _derivatives(session: Session, ids: list[str], params_hash: str) -> dict[str, Derivative]:
    rows = session.scalars(
        select(Derivative).where(
            Derivative.image_id.in_(ids),
            Derivative.kind == BUCKET_KIND,
            Derivative.params_hash == params_hash,
        )
    )
    return {row.image_id: row for row in rows}


def _export_statuses(session: Session, dataset: Dataset, request: ExportRequest) -> tuple[str, ...]:
    curated = session.scalar(
        select(Image.id).where(Image.dataset_id == dataset.id, Image.status.in_(CURATED_STATUSES)).limit(1)
    )
    statuses = ("kept",) if curated else ("kept", "pending")
    return statuses + EXCLUDED_STATUSES if request.include_rejected else statuses


def _spec(dataset: Dataset, request: ExportRequest) -> ExportSpec:
    run = trainer_run(dataset, request.format)
    settings = dataset.settings or {}
    values: dict[str, Any] = {
        "trigger_word": dataset.trigger_word,
        "class_word": dataset.class_word,
        "target_model": dataset.target_model,
        "repeats": request.repeats,
        "name": re.sub(r"[^A-Za-z0-9_.-]+", "-", dataset.name).strip("-._")[:64] or "dataset",
        # The resolution the pictures were cut for: the trainer's buckets depend on it.
        "resolution": run["resolution"] if run else settings.get("bucket_resolution"),
    }
    extras: dict[str, Any] = {}
    for key, value in request.options.items():
        if key in _SPEC_FIELDS:
            values[key] = value
        else:
            extras[key] = value
    return ExportSpec(format=request.format, options=extras, **values)


def _item(
    image: Image,
    caption: Caption | None,
    derived: Derivative | None,
    faces: list[list[float]] | None,
    store: ObjectStore,
    provenance: dict[str, Any] | None = None,
) -> ExportItem:
    common: dict[str, Any] = {
        "image_id": image.id,
        "stem": safe_stem(image.original_filename, image.sha256),
        "source_sha256": image.sha256,
        "caption": caption.text if caption else None,
        "status": image.status,
        "provenance": provenance,
    }
    if derived is None:
        return ExportItem(
            **common,
            bucket=None,
            width=image.width,
            height=image.height,
            read=_reader(store, image.object_key),
            source_format=image.format,
            faces=[tuple(box[:4]) for box in faces] if faces else None,  # type: ignore[misc]
            content_sha256=image.sha256,
        )
    ext = PurePosixPath(derived.object_key).suffix.lstrip(".") or "png"
    return ExportItem(
        **common,
        bucket=(derived.width, derived.height),
        width=derived.width,
        height=derived.height,
        read=_reader(store, derived.object_key),
        source_format=ext,
        faces=_faces_in_derivative(faces, image, derived),
    )


def _reader(store: ObjectStore, key: str) -> Callable[[], bytes]:
    return lambda: store.get(key)


def _faces_in_derivative(
    faces: list[list[float]] | None, image: Image, derived: Derivative
) -> list[tuple[float, float, float, float]] | None:
    """Face boxes moved into the derivative's pixels: shifted by its crop box, scaled to its size."""
    if not faces:
        return None
    x0, y0, x1, y1 = (float(v) for v in (derived.box or (0, 0, image.width, image.height))[:4])
    sx, sy = derived.width / max(x1 - x0, 1.0), derived.height / max(y1 - y0, 1.0)
    moved = []
    for box in faces:
        bx0, by0 = max(box[0] - x0, 0.0) * sx, max(box[1] - y0, 0.0) * sy
        bx1, by1 = min(box[2] - x0, x1 - x0) * sx, min(box[3] - y0, y1 - y0) * sy
        if bx1 > bx0 and by1 > by0:
            moved.append((bx0, by0, bx1, by1))
    return moved or None


def _active_captions(session: Session, ids: list[str]) -> dict[str, Caption]:
    rows = session.scalars(
        select(Caption)
        .where(Caption.image_id.in_(ids), Caption.is_active.is_(True))
        .order_by(Caption.created_at)
    )
    return {row.image_id: row for row in rows}  # the newest wins should two be active


def _faces(session: Session, ids: list[str]) -> dict[str, list[list[float]]]:
    out: dict[str, list[list[float]]] = {}
    for image_id, bbox in session.execute(select(Face.image_id, Face.bbox).where(Face.image_id.in_(ids))):
        out.setdefault(image_id, []).append([float(v) for v in bbox])
    return out


def list_exports(session: Session, dataset_id: str, *, include_all: bool = False) -> list[Export]:
    """The dataset's versions, oldest first; only COMPLETED ones unless include_all."""
    query = select(Export).where(Export.dataset_id == dataset_id)
    if not include_all:
        query = query.where(Export.status == COMPLETED)
    return list(session.scalars(query.order_by(Export.created_at, Export.id)))


def find_export(session: Session, dataset_id: str, export_id: str) -> Export:
    """A COMPLETED version of the dataset by id or unique id prefix (at least 4 characters)."""
    if len(export_id) < 4:
        raise NotFound(f"export id {export_id!r} is too short; give at least 4 characters")
    matches = [row for row in list_exports(session, dataset_id) if row.id.startswith(export_id.lower())]
    if not matches:
        raise NotFound(f"no completed export {export_id!r} in this dataset")
    if len(matches) > 1:
        raise Conflict(f"export id {export_id!r} is ambiguous: {', '.join(m.id for m in matches)}")
    return matches[0]
