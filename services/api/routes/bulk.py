"""Bulk work on a dataset's pictures for the dashboard: keep or reject a selection (ids, or every card a
filter matches: routes/cards.py), and find/replace/prepend/append in its captions.

Every route names the dataset in its path and refuses pictures of another one (404), so a client can never
write to a dataset other than the one it shows.
"""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter
from pydantic import Field, model_validator
from sqlalchemy import select
from sqlalchemy.orm import Session

from loraforge.catalog.models import Dataset, Image
from loraforge.errors import InvalidInput
from loraforge.stages import operations
from loraforge.stages.datasets import get_dataset
from loraforge.stages.review import resolve_images
from services.api.deps import ReleasingRoute, SessionDep
from services.api.routes.cards import CardFilter, active_captions, matching_ids
from services.api.schemas import ERROR_RESPONSES, ReviewStatus, Schema

router = APIRouter(route_class=ReleasingRoute, tags=["bulk"])
MAX_SELECTION = 10_000


class Selection(Schema):
    """Either pictures by id, or every picture a filter matches."""

    image_ids: list[str] | None = Field(default=None, max_length=MAX_SELECTION)
    filter: CardFilter | None = None

    @model_validator(mode="after")
    def _one_way(self) -> Selection:
        if (self.image_ids is None) == (self.filter is None):
            raise ValueError("give either image_ids or filter")
        if self.image_ids is not None and not self.image_ids:
            raise ValueError("select at least one picture")
        return self


class BulkReview(Schema):
    selection: Selection
    status: ReviewStatus
    reason: str | None = Field(default=None, max_length=2000)


class BulkCaptionEdit(Schema):
    selection: Selection
    operation: Literal["replace", "prepend", "append", "set"]
    find: str | None = Field(default=None, max_length=1000, description="The text to replace (replace).")
    text: str = Field(max_length=10_000, description="The new text, or what to add.")

    @model_validator(mode="after")
    def _complete(self) -> BulkCaptionEdit:
        if self.operation == "replace" and not (self.find or "").strip():
            raise ValueError("give the text to find")
        if self.operation != "replace" and not self.text.strip():
            raise ValueError("the text must not be blank")
        return self


class CaptionChangePublic(Schema):
    image_id: str
    filename: str
    before: str | None
    after: str


class BulkResult(Schema):
    changed: int
    skipped: int = 0
    image_ids: list[str]
    captions: list[CaptionChangePublic] = Field(default_factory=list)


@router.post("/datasets/{dataset_id}/bulk/review", response_model=BulkResult, responses=ERROR_RESPONSES)
def review_selection(session: SessionDep, dataset_id: str, body: BulkReview) -> BulkResult:
    """Keep, reject or hand back to curation ("auto") every selected picture."""
    dataset = get_dataset(session, dataset_id)
    ids = _selected_ids(session, dataset, body.selection)
    if not ids:
        return BulkResult(changed=0, image_ids=[])
    changes = operations.review(session, dataset.id, ids, status=body.status, reason=body.reason)
    return BulkResult(changed=len(changes), image_ids=[change.image_id for change in changes])


@router.post("/datasets/{dataset_id}/bulk/captions", response_model=BulkResult, responses=ERROR_RESPONSES)
def edit_selection_captions(session: SessionDep, dataset_id: str, body: BulkCaptionEdit) -> BulkResult:
    """Find/replace, prepend, append or set the active caption of every selected picture; each changed
    caption becomes a new edited row and the old one stays as history. Pictures without a caption are
    skipped by replace, prepend and append; a result that would be empty is skipped."""
    dataset = get_dataset(session, dataset_id)
    ids = _selected_ids(session, dataset, body.selection)
    captions = active_captions(session, ids)
    names = dict(session.execute(select(Image.id, Image.original_filename).where(Image.id.in_(ids))).all())
    changes: list[CaptionChangePublic] = []
    for image_id in ids:
        before = captions.get(image_id)
        after = edited_caption(before, body.operation, find=body.find or "", text=body.text)
        if after is None or after == before:
            continue
        operations.edit_caption(session, image_id, after)
        changes.append(
            CaptionChangePublic(
                image_id=image_id, filename=names[image_id], before=before, after=" ".join(after.split())
            )
        )
    return BulkResult(
        changed=len(changes),
        skipped=len(ids) - len(changes),
        image_ids=[change.image_id for change in changes],
        captions=changes,
    )


def edited_caption(before: str | None, operation: str, *, find: str, text: str) -> str | None:
    """The caption after one bulk operation, or None when it does not apply (no caption, empty result)."""
    if operation == "set":
        after = text
    elif before is None:
        return None
    elif operation == "replace":
        after = before.replace(find, text)
    elif operation == "prepend":
        after = f"{text} {before}"
    else:
        after = f"{before}{text}" if text[:1] in ",.;:" else f"{before} {text}"
    after = " ".join(after.split())
    return after or None


def _selected_ids(session: Session, dataset: Dataset, selection: Selection) -> list[str]:
    if selection.filter is not None:
        return matching_ids(session, dataset, selection.filter)
    refs = list(dict.fromkeys(selection.image_ids or []))
    # Ids only (never file names), and only the dataset's: anything else is a 404 naming it.
    images = resolve_images(session, dataset, refs)
    strays = sorted(set(refs) - {image.id for image in images})
    if strays:
        raise InvalidInput(f"select pictures by id, not by name: {', '.join(strays[:5])}")
    return [image.id for image in images]
