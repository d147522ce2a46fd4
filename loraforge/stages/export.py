"""Export: turn a dataset's catalog state into an immutable, stored, manifest-carrying version (driver side).

`plan_export` reads what goes out (images, active captions, bucket derivatives) from the catalog;
`write_export` validates, writes the trainer layout into a temporary zip (and optionally a folder), stores
the zip and its manifest, and only then marks the `exports` row COMPLETED. Any failure marks the row FAILED
and removes what was stored or placed, so no half-written version is ever visible.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path, PurePosixPath
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from loraforge.catalog.models import Caption, Dataset, Derivative, Export, Face, Image, utcnow
from loraforge.catalog.queries import current_buckets, dataset_images
from loraforge.errors import Conflict, InvalidInput, NotFound
from loraforge.exporters import (
    DatasetInfo,
    DirectorySink,
    ExportItem,
    ExportSpec,
    ValidationReport,
    ZipSink,
    build_manifest,
    canonical_json,
    safe_stem,
    validate,
)
from loraforge.exporters import export_dataset as write_dataset
from loraforge.exporters.sinks import Sink
from loraforge.stages.context import Context
from loraforge.storage import ObjectStore
from loraforge.storage.keys import export_key

log = logging.getLogger(__name__)

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


@dataclass
class ExportPlan:
    """Everything an export needs, read from the catalog in one session."""

    dataset: DatasetInfo
    spec: ExportSpec
    items: list[ExportItem]
    sources: list[dict[str, Any]]
    """Per image: its original, the processed file used (if any) and the caption row, for the manifest."""


@dataclass(frozen=True)
class ExportOutcome:
    """A stored version and where its local copies went."""

    export_id: str
    object_key: str
    manifest_key: str
    image_count: int
    file_count: int
    bytes: int
    warnings: list[str]
    validation: str
    out_dir: str | None = None
    zip_path: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "export_id": self.export_id,
            "object_key": self.object_key,
            "manifest_key": self.manifest_key,
            "images": self.image_count,
            "files": self.file_count,
            "bytes": self.bytes,
            "warnings": self.warnings,
            "validation": self.validation,
            "out": self.out_dir or self.zip_path,
            "out_dir": self.out_dir,
            "zip_path": self.zip_path,
        }


def plan_export(session: Session, dataset: Dataset, request: ExportRequest, store: ObjectStore) -> ExportPlan:
    """Pick the images (kept, or pending if never curated), their active captions and bucket derivatives."""
    images = dataset_images(session, dataset.id, statuses=_export_statuses(session, dataset, request))
    ids = [image.id for image in images]
    captions = _active_captions(session, ids)
    derivatives = current_buckets(session, dataset, ids)
    faces = _faces(session, ids)
    items, sources = [], []
    for image in images:
        caption = captions.get(image.id)
        derived = derivatives.get(image.id)
        items.append(_item(image, caption, derived, faces.get(image.id), store))
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
            }
        )
    info = DatasetInfo(
        dataset.id, dataset.name, dataset.trigger_word, dataset.class_word, dataset.target_model
    )
    return ExportPlan(info, _spec(dataset, request), items, sources)


def preview_export(
    session: Session, dataset: Dataset, request: ExportRequest, store: ObjectStore, *, strict: bool = False
) -> ValidationReport:
    """The validation report of what an export would write now; strict raises InvalidInput as export does."""
    plan = plan_export(session, dataset, request, store)
    return validate(plan.items, plan.spec, strict=strict)


def _export_statuses(session: Session, dataset: Dataset, request: ExportRequest) -> tuple[str, ...]:
    curated = session.scalar(
        select(Image.id).where(Image.dataset_id == dataset.id, Image.status.in_(CURATED_STATUSES)).limit(1)
    )
    statuses = ("kept",) if curated else ("kept", "pending")
    return statuses + EXCLUDED_STATUSES if request.include_rejected else statuses


def _spec(dataset: Dataset, request: ExportRequest) -> ExportSpec:
    values: dict[str, Any] = {
        "trigger_word": dataset.trigger_word,
        "class_word": dataset.class_word,
        "target_model": dataset.target_model,
        "repeats": request.repeats,
        "name": re.sub(r"[^A-Za-z0-9_.-]+", "-", dataset.name).strip("-._")[:64] or "dataset",
    }
    extras: dict[str, Any] = {}
    for key, value in request.options.items():
        if key in _SPEC_FIELDS:
            values[key] = [tuple(b) for b in value] if key == "buckets" and value is not None else value
        else:
            extras[key] = value
    return ExportSpec(format=request.format, options=extras, **values)


def _item(
    image: Image,
    caption: Caption | None,
    derived: Derivative | None,
    faces: list[list[float]] | None,
    store: ObjectStore,
) -> ExportItem:
    common = {
        "image_id": image.id,
        "stem": safe_stem(image.original_filename, image.sha256),
        "source_sha256": image.sha256,
        "caption": caption.text if caption else None,
        "status": image.status,
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


class _TeeSink:
    """Writes every member to several sinks (the stored zip and the user's folder) in one pass."""

    def __init__(self, sinks: Iterable[Sink]) -> None:
        self.sinks = list(sinks)

    def write(self, name: str, data: bytes, *, compress: bool) -> None:
        for sink in self.sinks:
            sink.write(name, data, compress=compress)

    def close(self) -> None:
        for sink in self.sinks:
            sink.close()


def local_outputs(out: str | Path | None, *, zip: bool = False) -> tuple[Path | None, Path | None]:
    """(folder, zip file) for `--out`: a path ending in .zip is the zip alone; any other path is the folder
    form, plus `<folder>.zip` beside it when `zip` is set."""
    if out is None:
        return None, None
    path = Path(out).expanduser()
    if path.suffix.lower() == ".zip":
        return None, path
    return path, (path.with_name(path.name + ".zip") if zip else None)


def check_out_dir(out_dir: Path) -> None:
    """Refuse early, before any work, a folder that would mix stale files into the export."""
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise Conflict(f"export directory {out_dir} exists and is not empty")


def write_export(
    ctx: Context,
    plan: ExportPlan,
    *,
    strict: bool = False,
    out_dir: Path | None = None,
    zip_path: Path | None = None,
    progress: Callable[[int], None] | None = None,
    read_ahead: int = 4,
) -> ExportOutcome:
    """Validate, write, store, then commit the version; on any failure nothing stays visible."""
    if not plan.items:
        raise InvalidInput(
            f"dataset {plan.dataset.name!r} has no images to export (kept, or pending if never "
            "curated; --include-rejected adds rejected and duplicates)"
        )
    report = validate(plan.items, plan.spec, strict=strict)  # strict refuses here, before any row exists
    if out_dir is not None:
        check_out_dir(out_dir)
    created_at = utcnow()
    with ctx.catalog.session() as session:
        row = Export(
            dataset_id=plan.dataset.dataset_id, format=plan.spec.format, status=PENDING, created_at=created_at
        )
        session.add(row)
        session.flush()
        export_id = row.id
    object_key = export_key(plan.dataset.dataset_id, export_id, "zip")
    manifest_key = export_key(plan.dataset.dataset_id, export_id, "json")
    placed: list[Path] = []
    try:
        with tempfile.TemporaryDirectory(prefix="loraforge-export-") as tmp:
            archive = Path(tmp) / "export.zip"
            staging = None if out_dir is None else _sibling(out_dir, export_id)
            with archive.open("wb") as handle:
                sinks: list[Sink] = [ZipSink(handle)] + ([DirectorySink(staging)] if staging else [])
                placed += [staging] if staging else []
                result = write_dataset(
                    plan.items,
                    plan.spec,
                    sink=_TeeSink(sinks),
                    strict=strict,
                    progress=progress,
                    read_ahead=read_ahead,
                )
            manifest = build_manifest(export_id, plan.dataset, plan.spec, result.files, created_at)
            manifest["sources"] = plan.sources
            manifest["warnings"] = result.warnings
            stored = ctx.store.put_file(object_key, archive, content_type="application/zip")
            ctx.store.put(
                manifest_key, canonical_json(manifest).encode("utf-8"), content_type="application/json"
            )
            if zip_path is not None:
                partial = _sibling(zip_path, export_id)
                placed.append(partial)
                shutil.copyfile(archive, partial)
                os.replace(partial, zip_path)
                placed[-1] = zip_path
            if staging is not None and out_dir is not None:
                if out_dir.exists():
                    out_dir.rmdir()  # checked empty above; rename needs it gone
                os.replace(staging, out_dir)
                placed[placed.index(staging)] = out_dir
        with ctx.catalog.session() as session:
            row = session.get(Export, export_id)
            assert row is not None
            row.status, row.object_key, row.manifest = COMPLETED, object_key, manifest
            row.image_count, row.bytes = result.image_count, stored.size
    except BaseException:
        _discard(ctx, export_id, (object_key, manifest_key), placed)
        raise
    log.info("export %s of %s stored at %s", export_id, plan.dataset.name, object_key)
    return ExportOutcome(
        export_id,
        object_key,
        manifest_key,
        result.image_count,
        len(result.files),
        stored.size,
        result.warnings,
        report.summary(),
        str(out_dir) if out_dir else None,
        str(zip_path) if zip_path else None,
    )


def _sibling(target: Path, export_id: str) -> Path:
    target.parent.mkdir(parents=True, exist_ok=True)
    return target.parent / f".{target.name}.partial-{export_id[:12]}"


def _discard(ctx: Context, export_id: str, keys: Iterable[str], placed: Iterable[Path]) -> None:
    """Undo a failed export as far as possible; each step is independent so one failure skips none."""
    for key in keys:
        try:
            ctx.store.delete(key)
        except Exception:  # noqa: BLE001 - the original failure is what the caller must see
            log.exception("could not delete %s after a failed export", key)
    for path in placed:
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
    try:
        with ctx.catalog.session() as session:
            row = session.get(Export, export_id)
            if row is not None:
                row.status, row.object_key, row.manifest = FAILED, None, None
    except Exception:  # noqa: BLE001
        log.exception("could not mark export %s failed", export_id)


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
