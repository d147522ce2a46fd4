"""Captions of an image: every variant with its history, and a manual edit of the active one."""

from __future__ import annotations

from fastapi import APIRouter

from loraforge.catalog.models import Image
from loraforge.stages import operations
from services.api import crud
from services.api.deps import ReleasingRoute, SessionDep
from services.api.schemas import CaptionPublic, CaptionsPublic, CaptionUpdate

router = APIRouter(route_class=ReleasingRoute, prefix="/images/{image_id}/captions", tags=["captions"])


@router.get("", response_model=CaptionsPublic)
def read_captions(session: SessionDep, image_id: str) -> CaptionsPublic:
    image = crud.get_or_404(session, Image, image_id)
    rows = crud.image_captions(session, image.id)
    return CaptionsPublic(data=[CaptionPublic.model_validate(row) for row in rows], count=len(rows))


@router.put("/active", response_model=CaptionPublic)
def update_active_caption(session: SessionDep, image_id: str, body: CaptionUpdate) -> CaptionPublic:
    """Record the user's text as a new active caption; the previous ones stay as inactive history."""
    return CaptionPublic.model_validate(
        operations.edit_caption(session, image_id, body.text, variant=body.variant)
    )
