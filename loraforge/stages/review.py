"""Manual review: keep or reject pictures by hand, or hand them back to curation, by filename or id."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy.orm import Session

from loraforge.catalog.models import Dataset, Image
from loraforge.catalog.queries import dataset_images
from loraforge.errors import InvalidInput, NotFound

MANUAL_REASONS = {"kept": "kept by hand", "rejected": "rejected by hand"}


@dataclass(frozen=True)
class ReviewChange:
    image_id: str
    filename: str
    status: str
    previous: str
    reason: str | None


def review_images(
    session: Session, dataset: Dataset, refs: Sequence[str], *, status: str, reason: str | None = None
) -> list[ReviewChange]:
    """Keep or reject pictures by hand (filename as in the report, or image id); a later curate keeps it.

    status "auto" hands the pictures back to curation: the next `curate` decides them again.
    """
    if status not in ("kept", "rejected", "auto"):
        raise InvalidInput(f"review status must be kept, rejected or auto, not {status!r}")
    if not refs:
        raise InvalidInput("name at least one picture (filename as in the report, or image id)")
    images = resolve_images(session, dataset, refs)
    changes = []
    for image in images:
        previous = image.status
        if status == "auto":
            image.status_manual = False
            text = None
        else:
            text = reason or MANUAL_REASONS[status]
            image.status, image.status_reason, image.duplicate_of = status, text, None
            image.status_manual = True
        changes.append(ReviewChange(image.id, image.original_filename, image.status, previous, text))
    session.flush()
    return changes


def resolve_images(session: Session, dataset: Dataset, refs: Sequence[str]) -> list[Image]:
    """Pictures of the dataset by id or original filename, in the given order, each once."""
    images = dataset_images(session, dataset.id)
    by_id = {image.id: image for image in images}
    by_name: dict[str, list[Image]] = {}
    for image in images:
        by_name.setdefault(image.original_filename, []).append(image)
    found: dict[str, Image] = {}
    missing, ambiguous = [], []
    for ref in refs:
        matches = [by_id[ref]] if ref in by_id else by_name.get(ref, [])
        if not matches:
            missing.append(ref)
        elif len(matches) > 1:
            ambiguous.append(ref)
        else:
            found.setdefault(matches[0].id, matches[0])
    if missing:
        raise NotFound(f"no picture named {', '.join(missing)} in dataset {dataset.name!r}")
    if ambiguous:
        raise InvalidInput(f"several pictures are named {', '.join(ambiguous)}: use the image id instead")
    return list(found.values())
