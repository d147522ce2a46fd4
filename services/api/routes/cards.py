"""Cards: a dataset's pictures with what a reviewer reads under each (caption and its CLIP token count,
issues, bucket, upscale), filtered and paged, for the dashboard's grid and its bulk selections."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from loraforge.captioning.tokens import clip_token_count
from loraforge.catalog.models import Caption, Dataset, Image, ImageMetadata
from loraforge.curation.registry import all_checks
from loraforge.stages import operations
from loraforge.stages.curate_records import ISSUES_KEY
from loraforge.stages.datasets import get_dataset
from services.api.deps import ReleasingRoute, SessionDep
from services.api.schemas import ImageStatus, Schema

router = APIRouter(route_class=ReleasingRoute, tags=["bulk"])
UPSCALE_KEY = "upscale"
"""The metadata key the bucket stage records its enlargement factor under."""


class CardFilter(Schema):
    """Which pictures: every given criterion must hold (text matches ignore case)."""

    statuses: list[ImageStatus] = Field(default_factory=list)
    issue: str | None = Field(default=None, max_length=100, description="A check name the picture fails.")
    bucket: str | None = Field(default=None, pattern=r"^\d+x\d+$", description="WIDTHxHEIGHT")
    caption: str | None = Field(default=None, max_length=1000, description="Text the active caption holds.")
    filename: str | None = Field(default=None, max_length=1000, description="Text the file name holds.")


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


def matching_ids(session: Session, dataset: Dataset, criteria: CardFilter) -> list[str]:
    """The ids of the dataset's pictures the filter matches, in the cards' order."""
    return [card.id for card in _cards(session, dataset) if _matches(card, criteria)]


def active_captions(session: Session, ids: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for start in range(0, len(ids), 500):
        query = select(Caption.image_id, Caption.text).where(
            Caption.image_id.in_(ids[start : start + 500]), Caption.is_active.is_(True)
        )
        out.update({image_id: text for image_id, text in session.execute(query)})
    return out


def _cards(session: Session, dataset: Dataset) -> list[CardPublic]:
    images = list(
        session.scalars(
            select(Image).where(Image.dataset_id == dataset.id).order_by(Image.original_filename, Image.id)
        )
    )
    ids = [image.id for image in images]
    captions = active_captions(session, ids)
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
