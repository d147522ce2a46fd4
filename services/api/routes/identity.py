"""Reference faces of a dataset (the identity filter): read them, set them from the dataset's own pictures,
clear them. The next curation rejects pictures whose faces match none of them as `other_person`."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, status
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from loraforge.catalog.models import Dataset
from loraforge.curation.identity import DEFAULT_MAX_DISTANCE, MAX_MAX_DISTANCE, MIN_MAX_DISTANCE
from loraforge.errors import ModelError
from loraforge.stages import curate_identity
from services.api import crud
from services.api.deps import ReleasingRoute, SessionDep, SettingsDep, StoreDep
from services.api.schemas import ERROR_RESPONSES, ErrorPublic

router = APIRouter(
    route_class=ReleasingRoute, prefix="/datasets/{dataset_id}/identity/references", tags=["identity"]
)

ImageId = Annotated[str, StringConstraints(min_length=1, max_length=64)]

SET_ERRORS: dict[int | str, dict[str, Any]] = {
    **ERROR_RESPONSES,
    404: {"model": ErrorPublic, "description": "The dataset, or a picked image, is not in this dataset."},
    422: {"model": ErrorPublic, "description": "Invalid body, or a picked picture shows no face."},
    503: {
        "model": ErrorPublic,
        "description": "The catalog or store is busy, or this server lacks the face models (dlib: install "
        "loraforge[models]).",
    },
}


class ReferenceFacesUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    image_ids: list[ImageId] = Field(
        min_length=1,
        max_length=curate_identity.MAX_REFERENCES,
        description="Pictures of the dataset showing the person; the largest face of each is the reference.",
    )
    max_distance: float | None = Field(
        default=None,
        ge=MIN_MAX_DISTANCE,
        le=MAX_MAX_DISTANCE,
        description=f"Largest face distance still the same person (dlib; default {DEFAULT_MAX_DISTANCE}, "
        "or the one saved); lower is stricter.",
    )


class ReferenceFacePublic(BaseModel):
    name: str
    image_id: str | None
    box: list[float] = Field(description="The face in that picture: x0, y0, x1, y1 in pixels.")


class ReferenceFacesPublic(BaseModel):
    model: str | None = Field(description="The face model; null when the dataset has no reference faces.")
    max_distance: float
    data: list[ReferenceFacePublic]
    count: int


def _public(config: curate_identity.IdentityConfig | None) -> ReferenceFacesPublic:
    if config is None:
        return ReferenceFacesPublic(model=None, max_distance=DEFAULT_MAX_DISTANCE, data=[], count=0)
    data = [ReferenceFacePublic(name=r.name, image_id=r.image_id, box=list(r.box)) for r in config.references]
    return ReferenceFacesPublic(
        model=config.model, max_distance=config.max_distance, data=data, count=len(data)
    )


@router.get("", response_model=ReferenceFacesPublic)
def read_reference_faces(session: SessionDep, dataset_id: str) -> ReferenceFacesPublic:
    """The dataset's reference faces (none: the identity filter is off)."""
    dataset = crud.get_or_404(session, Dataset, dataset_id)
    return _public(curate_identity.identity_config(dataset))


@router.put("", response_model=ReferenceFacesPublic, responses=SET_ERRORS)
def set_reference_faces(
    session: SessionDep,
    store: StoreDep,
    settings: SettingsDep,
    dataset_id: str,
    body: ReferenceFacesUpdate,
) -> ReferenceFacesPublic:
    """Make these pictures of the dataset its reference faces; the next curation compares every picture
    with them. Replaces the earlier references."""
    dataset = crud.get_or_404(session, Dataset, dataset_id)
    try:
        config = curate_identity.references_from_images(
            session,
            store,
            dataset,
            body.image_ids,
            curate_identity.default_embedder(),
            max_pixels=settings.max_image_pixels,
            max_distance=body.max_distance,
        )
    except ModelError as exc:  # the face models are missing or broken on this server, not the request
        raise HTTPException(status_code=status.HTTP_503_SERVICE_UNAVAILABLE, detail=str(exc)) from None
    return _public(config)


@router.delete("", status_code=status.HTTP_204_NO_CONTENT)
def clear_reference_faces(session: SessionDep, dataset_id: str) -> None:
    """Turn the identity filter off: the next curation no longer compares faces."""
    dataset = crud.get_or_404(session, Dataset, dataset_id)
    curate_identity.clear_references(dataset)
