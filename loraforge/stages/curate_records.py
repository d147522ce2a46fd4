"""Curation records in the catalog: which pictures need measuring, storing features and CLIP embeddings."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from sqlalchemy import Table, bindparam, insert, select, update
from sqlalchemy.orm import Session

from loraforge.catalog.models import Image, ImageMetadata
from loraforge.curation.features import FEATURES_VERSION
from loraforge.errors import InvalidInput, NotFound
from loraforge.imaging.decode import load_image
from loraforge.stages.base import Item, Result
from loraforge.storage import ObjectStore

log = logging.getLogger(__name__)

FEATURES_KEY = "features"
ISSUES_KEY = "issues"
SCORES_KEY = "scores"
EMBEDDING_KEY = "clip_embedding"
EMBED_CHUNK = 64

Embed = Callable[[Sequence[Image]], Mapping[str, Any]]
"""Pictures -> image id -> embedding vector; pictures it cannot embed are left out."""


@dataclass
class MeasureRecord:
    """What one shard recorded: measured image ids and one reason per picture that failed."""

    measured: list[str] = field(default_factory=list)
    failed: list[dict[str, str]] = field(default_factory=list)

    def merge(self, other: MeasureRecord) -> None:
        self.measured += other.measured
        self.failed += other.failed


def select_curate_work(session: Session, dataset_id: str) -> tuple[list[Item], int]:
    """Items for pictures with no features of the current version, and how many already have them."""
    version = ImageMetadata.value["version"].as_integer()
    done = set(
        session.scalars(
            select(ImageMetadata.image_id)
            .join(Image, Image.id == ImageMetadata.image_id)
            .where(
                Image.dataset_id == dataset_id,
                ImageMetadata.key == FEATURES_KEY,
                version == FEATURES_VERSION,
            )
        )
    )
    rows = session.execute(
        select(Image.id, Image.object_key).where(Image.dataset_id == dataset_id).order_by(Image.id)
    )
    items = [{"image_id": image_id, "object_key": key} for image_id, key in rows if image_id not in done]
    return items, len(done)


def record_features(session: Session, results: Sequence[Result]) -> MeasureRecord:
    """Store features, or the reason bytes could not be measured, in one batch; safe to repeat (a retry).

    A failure that may pass (a store error) is reported but not stored, so the next run tries again.
    """
    record = MeasureRecord()
    values: dict[str, dict[str, Any]] = {}
    for result in results:
        image_id = str(result["image_id"])
        if result.get("error"):
            record.failed.append({"image_id": image_id, "reason": str(result["error"])})
            if result.get("permanent"):
                values[image_id] = {"version": FEATURES_VERSION, "error": str(result["error"])}
        else:
            values[image_id] = result["features"]
            record.measured.append(image_id)
    _upsert_metadata(session, FEATURES_KEY, values)
    names = _filenames(session, [f["image_id"] for f in record.failed])
    for failure in record.failed:
        failure["filename"] = names.get(failure["image_id"], failure["image_id"])
    return record


def clip_embed(session: Session, store: ObjectStore, *, spec: str, max_pixels: int) -> Embed:
    """An Embed function over a CLIP model, reusing vectors stored by earlier runs with the same model.

    `spec` is "MODEL:WEIGHTS": an open_clip model name and a checkpoint path (or a file under
    LORAFORGE_MODEL_DIR, or an open_clip pretrained tag), e.g. "ViT-B-32:laion2b_s34b_b79k".
    """
    embedder = clip_embedder(spec)

    def embed(images: Sequence[Image]) -> dict[str, Any]:
        import numpy as np

        cached = _metadata(session, [image.id for image in images], EMBEDDING_KEY)
        vectors = {
            image_id: np.asarray(value["vector"], dtype=np.float32)
            for image_id, value in cached.items()
            if isinstance(value, dict) and value.get("model") == spec
        }
        todo = [image for image in images if image.id not in vectors]
        fresh: dict[str, Any] = {}
        for start in range(0, len(todo), EMBED_CHUNK):
            pictures, ids = [], []
            for image in todo[start : start + EMBED_CHUNK]:
                try:
                    data = store.get(image.object_key)
                    pictures.append(load_image(data, max_pixels=max_pixels, draft_size=(448, 448)))
                    ids.append(image.id)
                except (InvalidInput, NotFound) as exc:
                    log.warning("no embedding for %s: %s", image.original_filename, exc)
            if pictures:
                fresh.update(zip(ids, embedder.embed(pictures), strict=True))
        _upsert_metadata(
            session,
            EMBEDDING_KEY,
            {i: {"model": spec, "vector": [round(float(x), 6) for x in v]} for i, v in fresh.items()},
        )
        return {**vectors, **fresh}

    return embed


def clip_embedder(spec: str) -> Any:
    """The ClipEmbedder a "MODEL:WEIGHTS" spec names; InvalidInput when the weights are not named."""
    from loraforge.models.clip import ClipEmbedder

    name, _, weights = spec.partition(":")
    if not name.strip() or not weights.strip():
        raise InvalidInput(
            f"CLIP model {spec!r} must be MODEL:WEIGHTS, e.g. ViT-B-32:laion2b_s34b_b79k or "
            "ViT-B-32:/models/clip.pt (without weights the embeddings would mean nothing)"
        )
    return ClipEmbedder(name.strip(), pretrained=weights.strip())


def _metadata(session: Session, ids: Sequence[str], key: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for start in range(0, len(ids), 10_000):
        rows = session.execute(
            select(ImageMetadata.image_id, ImageMetadata.value).where(
                ImageMetadata.key == key, ImageMetadata.image_id.in_(ids[start : start + 10_000])
            )
        )
        out.update((image_id, value) for image_id, value in rows)
    return out


def _upsert_metadata(session: Session, key: str, values: Mapping[str, Any]) -> None:
    """Insert or update one metadata key for many images with two executemany statements."""
    if not values:
        return
    current = _metadata(session, list(values), key)
    new = [{"image_id": i, "key": key, "value": v} for i, v in values.items() if i not in current]
    changed = [{"b_id": i, "b_value": v} for i, v in values.items() if i in current and current[i] != v]
    if new:
        session.execute(insert(ImageMetadata), new)
    if changed:
        table = cast(Table, ImageMetadata.__table__)
        session.execute(
            update(table)
            .where(table.c.image_id == bindparam("b_id"), table.c.key == key)
            .values(value=bindparam("b_value")),
            changed,
        )


def _filenames(session: Session, ids: Sequence[str]) -> dict[str, str]:
    if not ids:
        return {}
    rows = session.execute(select(Image.id, Image.original_filename).where(Image.id.in_(list(ids))))
    return {image_id: name for image_id, name in rows}
