"""Bulk work on a dataset's pictures for the dashboard: filtered cards (caption, issues, bucket), keep or
reject a selection, find/replace/prepend/append in its captions, and staging uploads for a whole-pipeline run.

Every route names the dataset in its path and refuses pictures of another one (404), so a client can never
write to a dataset other than the one it shows.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query
from pydantic import Field, model_validator
from sqlalchemy import select
from sqlalchemy.orm import Session

from loraforge.captioning.tokens import clip_token_count
from loraforge.catalog.models import Caption, Dataset, Image, ImageMetadata
from loraforge.curation.registry import all_checks
from loraforge.errors import InvalidInput
from loraforge.stages import operations
from loraforge.stages.curate_records import ISSUES_KEY
from loraforge.stages.datasets import get_dataset
from loraforge.stages.review import resolve_images
from services.api.deps import ReleasingRoute, SessionDep
from services.api.schemas import ERROR_RESPONSES, ImageStatus, ReviewStatus, Schema

router = APIRouter(route_class=ReleasingRoute, tags=["bulk"])
MAX_SELECTION = 10_000
UPSCALE_KEY = "upscale"
"""The metadata key the bucket stage records its enlargement factor under."""


class CardFilter(Schema):
    """Which pictures: every given criterion must hold (text matches ignore case)."""

    statuses: list[ImageStatus] = Field(default_factory=list)
    issue: str | None = Field(default=None, max_length=100, description="A check name the picture fails.")
    bucket: str | None = Field(default=None, pattern=r"^\d+x\d+$", description="WIDTHxHEIGHT")
    caption: str | None = Field(default=None, max_length=1000, description="Text the active caption holds.")
    filename: str | None = Field(default=None, max_length=1000, description="Text the file name holds.")


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


class CardPublic(Schema):
    id: str
    original_filename: str
    status: str
    status_reason: str | None
    status_manual: bool
    width: int
    height: int
    has_thumbnail: bool
    caption: str | None
    caption_tokens: int | None = Field(
        default=None, description="The caption's length in CLIP tokens, start and end included (of 77)."
    )
    issues: list[str]
    bucket: str | None
    upscale: float | None = Field(description="How much the bucket enlarges the picture (1 = not at all).")
    duplicate_of: str | None


class CheckPublic(Schema):
    threshold: float
    describe: str
    rejects: bool


class CardsPublic(Schema):
    data: list[CardPublic]
    count: int
    issues: list[str] = Field(description="Every issue some picture of the dataset has (for filter choices).")
    buckets: list[str] = Field(description="Every current bucket of the dataset.")
    checks: dict[str, CheckPublic] = Field(description="Each check's threshold for this dataset.")


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


@router.get("/datasets/{dataset_id}/cards", response_model=CardsPublic)
def read_cards(
    session: SessionDep,
    dataset_id: str,
    status_: Annotated[list[ImageStatus] | None, Query(alias="status")] = None,
    issue: Annotated[str | None, Query(max_length=100)] = None,
    bucket: Annotated[str | None, Query(pattern=r"^\d+x\d+$")] = None,
    caption: Annotated[str | None, Query(max_length=1000)] = None,
    filename: Annotated[str | None, Query(max_length=1000)] = None,
    offset: Annotated[int, Query(ge=0, le=1_000_000_000)] = 0,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> CardsPublic:
    """A page of pictures with what a reviewer reads under each: caption, issues, bucket."""
    dataset = get_dataset(session, dataset_id)
    criteria = CardFilter(
        statuses=status_ or [], issue=issue, bucket=bucket, caption=caption, filename=filename
    )
    cards = _cards(session, dataset)
    matching = [card for card in cards if _matches(card, criteria)]
    # Token counts for the page only: a page is at most 500 captions, about 30 µs each.
    page = [
        card.model_copy(update={"caption_tokens": clip_token_count(card.caption)}) if card.caption else card
        for card in matching[offset : offset + limit]
    ]
    return CardsPublic(
        data=page,
        count=len(matching),
        issues=sorted({issue for card in cards for issue in card.issues}),
        buckets=sorted({card.bucket for card in cards if card.bucket}, key=_bucket_order),
        checks=_checks(dataset),
    )


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
    captions = _active_captions(session, ids)
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


def _cards(session: Session, dataset: Dataset) -> list[CardPublic]:
    images = list(
        session.scalars(
            select(Image).where(Image.dataset_id == dataset.id).order_by(Image.original_filename, Image.id)
        )
    )
    ids = [image.id for image in images]
    captions = _active_captions(session, ids)
    issues = _metadata(session, dataset.id, ISSUES_KEY)
    upscales = _metadata(session, dataset.id, UPSCALE_KEY)
    buckets = operations.current_buckets(session, dataset)
    return [
        CardPublic(
            id=image.id,
            original_filename=image.original_filename,
            status=image.status,
            status_reason=image.status_reason,
            status_manual=image.status_manual,
            width=image.width,
            height=image.height,
            has_thumbnail=image.thumbnail_key is not None,
            caption=captions.get(image.id),
            issues=[str(name) for name in issues.get(image.id) or []],
            bucket=f"{buckets[image.id].width}x{buckets[image.id].height}" if image.id in buckets else None,
            upscale=_number(upscales.get(image.id)),
            duplicate_of=image.duplicate_of,
        )
        for image in images
    ]


def _matches(card: CardPublic, criteria: CardFilter) -> bool:
    if criteria.statuses and card.status not in criteria.statuses:
        return False
    if criteria.issue and criteria.issue not in card.issues:
        return False
    if criteria.bucket and card.bucket != criteria.bucket:
        return False
    if criteria.caption and criteria.caption.casefold() not in (card.caption or "").casefold():
        return False
    return not criteria.filename or criteria.filename.casefold() in card.original_filename.casefold()


def _selected_ids(session: Session, dataset: Dataset, selection: Selection) -> list[str]:
    if selection.filter is not None:
        return [card.id for card in _cards(session, dataset) if _matches(card, selection.filter)]
    refs = list(dict.fromkeys(selection.image_ids or []))
    # Ids only (never file names), and only the dataset's: anything else is a 404 naming it.
    images = resolve_images(session, dataset, refs)
    strays = sorted(set(refs) - {image.id for image in images})
    if strays:
        raise InvalidInput(f"select pictures by id, not by name: {', '.join(strays[:5])}")
    return [image.id for image in images]


def _active_captions(session: Session, ids: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for start in range(0, len(ids), 500):
        query = select(Caption.image_id, Caption.text).where(
            Caption.image_id.in_(ids[start : start + 500]), Caption.is_active.is_(True)
        )
        out.update({image_id: text for image_id, text in session.execute(query)})
    return out


def _metadata(session: Session, dataset_id: str, key: str) -> dict[str, object]:
    query = (
        select(ImageMetadata.image_id, ImageMetadata.value)
        .join(Image, Image.id == ImageMetadata.image_id)
        .where(Image.dataset_id == dataset_id, ImageMetadata.key == key)
    )
    return {image_id: value for image_id, value in session.execute(query)}


def _number(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _checks(dataset: Dataset) -> dict[str, CheckPublic]:
    curation = (dataset.settings or {}).get("curation") or {}
    saved = curation.get("thresholds") or {}
    rejecting = set(curation.get("reject") or ())
    return {
        name: CheckPublic(
            threshold=float(saved.get(name, check.default_threshold)),
            describe=check.describe,
            rejects=check.tag is None or name in rejecting,
        )
        for name, check in all_checks().items()
    }


def _bucket_order(bucket: str) -> tuple[int, int]:
    width, height = bucket.split("x")
    return int(width), int(height)
