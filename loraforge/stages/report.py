"""The dataset report: one JSON-ready record per image, gathering what every stage recorded."""

from __future__ import annotations

from collections import Counter
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from loraforge.catalog.models import Caption, Dataset, Face, ImageMetadata
from loraforge.catalog.queries import current_buckets, dataset_images

BUCKET_KIND = "bucket"
REPORT_METADATA_KEYS = ("issues", "scores", "crop_reason", "upscale", "identity")


def dataset_report(session: Session, dataset: Dataset) -> dict[str, Any]:
    """{"dataset": name, ..., "images": [...]}; later stages add fields, never rename them."""
    images = dataset_images(session, dataset.id)
    ids = [image.id for image in images]
    filenames = {image.id: image.original_filename for image in images}
    metadata = _metadata(session, ids)
    captions = _active_captions(session, ids)
    buckets = current_buckets(session, dataset, ids)
    faces = _face_counts(session, ids)
    records = []
    for image in images:
        meta = metadata.get(image.id, {})
        bucket = buckets.get(image.id)
        records.append(
            {
                "id": image.id,
                "filename": image.original_filename,
                "sha256": image.sha256,
                "width": image.width,
                "height": image.height,
                "format": image.format,
                "bytes": image.bytes,
                "source": {"kind": image.source_kind, "uri": image.source_uri},
                "status": image.status,
                "status_reason": image.status_reason,
                "status_manual": image.status_manual,
                "duplicate_of": filenames.get(image.duplicate_of) if image.duplicate_of else None,
                "issues": meta.get("issues", []),
                "scores": meta.get("scores", {}),
                "caption": captions.get(image.id),
                "bucket": f"{bucket.width}x{bucket.height}" if bucket else None,
                "crop": bucket.box if bucket else None,
                "crop_reason": meta.get("crop_reason"),
                "upscale": meta.get("upscale"),
                "identity": meta.get("identity"),  # distance to the reference faces, matched box
                "faces": faces.get(image.id),
            }
        )
    return {
        "dataset": dataset.name,
        "trigger_word": dataset.trigger_word,
        "class_word": dataset.class_word,
        "target_model": dataset.target_model,
        "counts": dict(Counter(image.status for image in images)),
        "images": records,
    }


def _metadata(session: Session, ids: list[str]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    if not ids:
        return out
    rows = session.execute(
        select(ImageMetadata.image_id, ImageMetadata.key, ImageMetadata.value).where(
            ImageMetadata.image_id.in_(ids), ImageMetadata.key.in_(REPORT_METADATA_KEYS)
        )
    )
    for image_id, key, value in rows:
        out.setdefault(image_id, {})[key] = value
    return out


def _active_captions(session: Session, ids: list[str]) -> dict[str, str]:
    if not ids:
        return {}
    rows = session.execute(
        select(Caption.image_id, Caption.text).where(Caption.image_id.in_(ids), Caption.is_active.is_(True))
    )
    return {key: value for key, value in rows}


def _face_counts(session: Session, ids: list[str]) -> dict[str, int]:
    if not ids:
        return {}
    rows = session.execute(
        select(Face.image_id, func.count()).where(Face.image_id.in_(ids)).group_by(Face.image_id)
    )
    return {key: value for key, value in rows}
