"""Trainings: read the LoRA trainings started from exports (creation comes with the training stage)."""

from __future__ import annotations

from fastapi import APIRouter

from loraforge.catalog.models import Dataset, Training
from services.api import crud
from services.api.deps import SessionDep
from services.api.schemas import TrainingPublic, TrainingsPublic

router = APIRouter(tags=["trainings"])


@router.get("/datasets/{dataset_id}/trainings", response_model=TrainingsPublic)
def read_trainings(session: SessionDep, dataset_id: str) -> TrainingsPublic:
    crud.get_or_404(session, Dataset, dataset_id)
    rows = crud.list_trainings(session, dataset_id)
    return TrainingsPublic(data=[TrainingPublic.model_validate(row) for row in rows], count=len(rows))


@router.get("/trainings/{training_id}", response_model=TrainingPublic)
def read_training(session: SessionDep, training_id: str) -> TrainingPublic:
    return TrainingPublic.model_validate(crud.get_or_404(session, Training, training_id))
