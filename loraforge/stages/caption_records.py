"""Captions in the catalog: which pictures lack a variant, recording a batch, manual edits and their history.

Rules: one active caption per picture; a new variant becomes active unless the active one is a manual edit
(edited=True), which nothing automatic ever deactivates; every edit is a new row, older rows stay as history.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from loraforge.catalog.models import Caption, Image, ImageMetadata
from loraforge.catalog.queries import dataset_images
from loraforge.curation.registry import tagging_checks
from loraforge.errors import InvalidInput, NotFound
from loraforge.stages.base import Item, Result
from loraforge.stages.curate_records import ISSUES_KEY

WORK_STATUSES = ("pending", "kept")
MANUAL_VARIANT = "manual"
WARNINGS_KEY = "caption_warnings"


@dataclass
class CaptionRecord:
    """What recording one or more batches did."""

    captioned: list[str] = field(default_factory=list)
    already: int = 0
    kept_manual: list[str] = field(default_factory=list)
    """Pictures whose manual edit stayed active; the new caption was stored as an inactive variant."""
    failed: list[dict[str, str]] = field(default_factory=list)
    warnings: list[dict[str, str]] = field(default_factory=list)

    def merge(self, other: CaptionRecord) -> None:
        self.captioned += other.captioned
        self.already += other.already
        self.kept_manual += other.kept_manual
        self.failed += other.failed
        self.warnings += other.warnings


def select_caption_work(session: Session, dataset_id: str, variant: str) -> tuple[list[Item], int]:
    """Items for every pending or kept picture lacking `variant`, and how many already have it."""
    images = dataset_images(session, dataset_id, statuses=WORK_STATUSES)
    done = _with_variant(session, [image.id for image in images], variant)
    todo = [image for image in images if image.id not in done]
    tags = curation_tags(session, [image.id for image in todo])
    items = [
        {
            "image_id": image.id,
            "filename": image.original_filename,
            "object_key": image.object_key,
            "tags": tags.get(image.id, []),
        }
        for image in todo
    ]
    return items, len(images) - len(items)


def curation_tags(session: Session, image_ids: Sequence[str]) -> dict[str, list[str]]:
    """Image id -> the caption tags of the tagging checks that flagged it ("black and white photo")."""
    tagging = tagging_checks()
    out: dict[str, list[str]] = {}
    for start in range(0, len(image_ids), 500):
        chunk = list(image_ids[start : start + 500])
        query = select(ImageMetadata.image_id, ImageMetadata.value).where(
            ImageMetadata.image_id.in_(chunk), ImageMetadata.key == ISSUES_KEY
        )
        for image_id, issues in session.execute(query):
            found = [tagging[name] for name in issues or () if name in tagging]
            if found:
                out[image_id] = found
    return out


def missing_variant(session: Session, image_ids: Sequence[str], variant: str) -> set[str]:
    """The ids among `image_ids` that have no caption of `variant` yet."""
    return set(image_ids) - _with_variant(session, image_ids, variant)


def keep_missing(session: Session, items: Sequence[Item], *, variant: str) -> list[Item]:
    """The items whose picture has no caption of `variant` yet (a retried shard skips what is done)."""
    missing = missing_variant(session, [str(item["image_id"]) for item in items], variant)
    return [item for item in items if item["image_id"] in missing]


def _with_variant(session: Session, image_ids: Sequence[str], variant: str) -> set[str]:
    found: set[str] = set()
    for start in range(0, len(image_ids), 500):
        chunk = list(image_ids[start : start + 500])
        query = select(Caption.image_id).where(Caption.image_id.in_(chunk), Caption.variant == variant)
        found.update(session.scalars(query))
    return found


def record_captions(
    session: Session, results: Sequence[Result], *, variant: str, source_model: str | None
) -> CaptionRecord:
    """Store one batch's captions. Safe to call again with the same results: a variant is stored once."""
    record = CaptionRecord()
    good = [result for result in results if not result.get("error")]
    ids = [str(result["image_id"]) for result in good]
    done = _with_variant(session, ids, variant)
    actives = _active_rows(session, ids)
    metadata = _warning_rows(session, ids)
    for result in results:
        filename = str(result.get("filename") or result.get("image_id"))
        if result.get("error"):
            record.failed.append({"filename": filename, "reason": str(result["error"])})
            continue
        image_id = str(result["image_id"])
        if image_id in done:
            record.already += 1
            continue
        done.add(image_id)
        active = actives.get(image_id)
        make_active = active is None or not active.edited
        if make_active and active is not None:
            active.is_active = False
        elif not make_active:
            record.kept_manual.append(filename)
        caption = Caption(
            image_id=image_id,
            variant=variant,
            text=str(result["text"]),
            source_model=source_model,
            is_active=make_active,
            edited=False,
        )
        session.add(caption)
        if make_active:
            actives[image_id] = caption
        record.captioned.append(filename)
        warnings = [str(w) for w in result.get("warnings") or []]
        record.warnings += [{"filename": filename, "warning": warning} for warning in warnings]
        _store_warnings(session, metadata, image_id, warnings)
    session.flush()
    return record


def _active_rows(session: Session, image_ids: Sequence[str]) -> dict[str, Caption]:
    if not image_ids:
        return {}
    query = select(Caption).where(Caption.image_id.in_(list(image_ids)), Caption.is_active.is_(True))
    return {row.image_id: row for row in session.scalars(query.order_by(Caption.created_at))}


def _warning_rows(session: Session, image_ids: Sequence[str]) -> dict[str, ImageMetadata]:
    if not image_ids:
        return {}
    query = select(ImageMetadata).where(
        ImageMetadata.image_id.in_(list(image_ids)), ImageMetadata.key == WARNINGS_KEY
    )
    return {row.image_id: row for row in session.scalars(query)}


def _store_warnings(
    session: Session, rows: dict[str, ImageMetadata], image_id: str, warnings: list[str]
) -> None:
    """The warnings of the picture's newest caption replace older ones; none removes the key."""
    row = rows.get(image_id)
    if warnings and row is None:
        rows[image_id] = row = ImageMetadata(image_id=image_id, key=WARNINGS_KEY, value=warnings)
        session.add(row)
    elif warnings and row is not None:
        row.value = warnings
    elif row is not None:
        session.delete(row)
        del rows[image_id]


def find_image(session: Session, dataset_id: str, ref: str) -> Image:
    """A picture of the dataset by id or by filename as the report shows it (a unique basename will do)."""
    text = ref.strip()
    image = session.get(Image, text)
    if image is not None and image.dataset_id == dataset_id:
        return image
    images = dataset_images(session, dataset_id)
    exact = [image for image in images if image.original_filename == text]
    matches = exact or [image for image in images if image.original_filename.rsplit("/", 1)[-1] == text]
    if len(matches) == 1:
        return matches[0]
    if matches:
        names = ", ".join(image.original_filename for image in matches[:5])
        raise InvalidInput(f"{ref!r} matches several pictures ({names}); use the image id")
    raise NotFound(f"no picture {ref!r} in this dataset (give the filename from the report or the image id)")


def set_caption(session: Session, image: Image, text: str, *, variant: str | None = None) -> Caption:
    """A manual edit: a new active row (edited=True); the previous rows stay as inactive history."""
    clean = " ".join(text.split())
    if not clean:
        raise InvalidInput("a caption must not be empty")
    active = _active_rows(session, [image.id]).get(image.id)
    for row in session.scalars(
        select(Caption).where(Caption.image_id == image.id, Caption.is_active.is_(True))
    ):
        row.is_active = False
    caption = Caption(
        image_id=image.id,
        variant=variant or (active.variant if active else MANUAL_VARIANT),
        text=clean,
        source_model=None,
        is_active=True,
        edited=True,
    )
    session.add(caption)
    session.flush()
    return caption


@dataclass(frozen=True)
class CaptionChange:
    filename: str
    before: str
    after: str


def replace_in_captions(session: Session, dataset_id: str, old: str, new: str) -> list[CaptionChange]:
    """Replace `old` (literal, case-sensitive) by `new` in every active caption of the dataset; each changed
    caption becomes a new edited row and the old one stays as history. Captions that would end up empty
    are left alone."""
    if not old:
        raise InvalidInput("the text to replace must not be empty")
    query = (
        select(Caption, Image.original_filename)
        .join(Image, Image.id == Caption.image_id)
        .where(Image.dataset_id == dataset_id, Caption.is_active.is_(True), Caption.text.contains(old))
        .order_by(Image.original_filename, Image.id)
    )
    changes = []
    for caption, filename in session.execute(query).all():
        after = " ".join(caption.text.replace(old, new).split())
        if not after or after == caption.text:
            continue
        caption.is_active = False
        session.add(
            Caption(
                image_id=caption.image_id,
                variant=caption.variant,
                text=after,
                source_model=caption.source_model,
                is_active=True,
                edited=True,
            )
        )
        changes.append(CaptionChange(filename=filename, before=caption.text, after=after))
    session.flush()
    return changes


def caption_history(session: Session, dataset_id: str, image: Image | None = None) -> list[dict[str, Any]]:
    """Every caption row of the dataset (or of one picture), oldest first, ready to print or dump."""
    query = select(Caption, Image.original_filename).join(Image, Image.id == Caption.image_id)
    query = query.where(Image.dataset_id == dataset_id)
    if image is not None:
        query = query.where(Image.id == image.id)
    rows = session.execute(query.order_by(Image.original_filename, Caption.created_at, Caption.id))
    return [
        {
            "id": caption.id,
            "image_id": caption.image_id,
            "filename": filename,
            "variant": caption.variant,
            "active": caption.is_active,
            "edited": caption.edited,
            "source_model": caption.source_model,
            "created_at": caption.created_at.isoformat() if caption.created_at else None,
            "text": caption.text,
        }
        for caption, filename in rows.all()
    ]
