"""The small operations every client shares (CLI, REST API, dashboard): review, caption edit, statistics,
exports, the current bucket, delete. Each rule lives here once; clients only translate in and out."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from loraforge import tasks
from loraforge.catalog.models import Caption, Dataset, Export, Image
from loraforge.catalog.queries import current_buckets
from loraforge.errors import NotFound
from loraforge.stages.caption_records import set_caption
from loraforge.stages.curate import ReviewChange, review_images
from loraforge.stages.datasets import get_dataset
from loraforge.stages.export import list_exports
from loraforge.storage import ObjectStore

__all__ = [
    "current_buckets",
    "dataset_stats",
    "delete_dataset",
    "edit_caption",
    "get_image",
    "list_exports",
    "remove_objects",
    "review",
]


def get_image(session: Session, image_id: str) -> Image:
    image = session.get(Image, image_id)
    if image is None:
        raise NotFound(f"image {image_id} not found")
    return image


def review(
    session: Session, dataset_id: str, refs: Sequence[str], *, status: str, reason: str | None = None
) -> list[ReviewChange]:
    """Keep, reject or hand back to curation ("auto") pictures by id or filename (loraforge review)."""
    return review_images(session, get_dataset(session, dataset_id), refs, status=status, reason=reason)


def edit_caption(session: Session, image_id: str, text: str, *, variant: str | None = None) -> Caption:
    """A manual caption: whitespace collapsed, never empty; the previous caption stays as history."""
    return set_caption(session, get_image(session, image_id), text, variant=variant)


def dataset_stats(session: Session, dataset: Dataset) -> dict[str, Any]:
    """Pictures per status and per current bucket, and how many have an active caption."""
    counts = select(Image.status, func.count()).where(Image.dataset_id == dataset.id).group_by(Image.status)
    by_status: dict[str, int] = {status: count for status, count in session.execute(counts)}
    captioned = session.scalar(
        select(func.count(func.distinct(Caption.image_id)))
        .join(Image, Image.id == Caption.image_id)
        .where(Image.dataset_id == dataset.id, Caption.is_active.is_(True))
    )
    buckets = current_buckets(session, dataset)
    return {
        "total": sum(by_status.values()),
        "by_status": by_status,
        "by_bucket": dict(Counter(f"{row.width}x{row.height}" for row in buckets.values())),
        "captioned": captioned or 0,
    }


def delete_dataset(session: Session, dataset_id: str, store: ObjectStore) -> DatasetDeletion:
    """Delete a dataset and its rows, cancelling its active run. Returns the keys of its derived objects,
    exports and staged uploads, for `remove_objects` once the deletion is committed (objects go after rows),
    and the orchestrator run to cancel.

    The cancelled run stops at its next heartbeat or shard boundary: its task row is gone, which it reads as
    a cancellation. Anything it wrote in between is named by no row and goes with the next integrity run,
    as do originals this dataset shared with no other.
    """
    dataset = get_dataset(session, dataset_id)
    busy = tasks.active_run(session, dataset_id)
    run_id = busy.orchestrator_run_id if busy is not None else None
    if busy is not None:
        tasks.end_task(session, busy.id, tasks.TaskStatus.CANCELLED, "the dataset was deleted")
    keys = [row.object_key for row in session.scalars(select(Export).where(Export.dataset_id == dataset_id))]
    session.delete(dataset)
    session.flush()
    for prefix in (f"derived/{dataset_id}/", f"exports/{dataset_id}/", f"uploads/{dataset_id}/"):
        keys += [info.key for info in store.list(prefix)]
    return DatasetDeletion(keys=[key for key in keys if key], cancelled_run_id=run_id)


@dataclass(frozen=True)
class DatasetDeletion:
    keys: list[str]
    """Objects to remove once the deletion is committed."""
    cancelled_run_id: str | None
    """The orchestrator (Prefect) run of the cancelled task, if it had one."""


def remove_objects(store: ObjectStore, keys: Iterable[str]) -> None:
    for key in keys:
        store.delete(key)
