"""Datasets: list per workspace, create, read, update, delete, and their statistics."""

from __future__ import annotations

from fastapi import APIRouter, BackgroundTasks, status

from loraforge.catalog.models import Dataset
from loraforge.stages import operations
from services.api import crud, pipeline
from services.api.deps import ContextDep, ReleasingRoute, SessionDep, StoreDep
from services.api.schemas import (
    ERROR_RESPONSES,
    DatasetCreate,
    DatasetPublic,
    DatasetsPublic,
    DatasetStats,
    DatasetUpdate,
)

router = APIRouter(route_class=ReleasingRoute, tags=["datasets"])


@router.get("/workspaces/{workspace_id}/datasets", response_model=DatasetsPublic)
def read_datasets(session: SessionDep, workspace_id: str) -> DatasetsPublic:
    rows = crud.list_datasets(session, workspace_id)
    return DatasetsPublic(data=[DatasetPublic.model_validate(row) for row in rows], count=len(rows))


@router.post(
    "/workspaces/{workspace_id}/datasets", response_model=DatasetPublic, status_code=status.HTTP_201_CREATED
)
def create_dataset(session: SessionDep, workspace_id: str, body: DatasetCreate) -> DatasetPublic:
    fields = body.model_dump()
    fields["name"] = fields["name"].strip()
    dataset = crud.create_dataset(session, workspace_id, **fields)
    return DatasetPublic.model_validate(dataset)


@router.get("/datasets/{dataset_id}", response_model=DatasetPublic)
def read_dataset(session: SessionDep, dataset_id: str) -> DatasetPublic:
    return DatasetPublic.model_validate(crud.get_or_404(session, Dataset, dataset_id))


@router.patch("/datasets/{dataset_id}", response_model=DatasetPublic)
def update_dataset(session: SessionDep, dataset_id: str, body: DatasetUpdate) -> DatasetPublic:
    dataset = crud.get_or_404(session, Dataset, dataset_id)
    dataset = crud.update_dataset(session, dataset, body.model_dump(exclude_unset=True))
    return DatasetPublic.model_validate(dataset)


@router.delete("/datasets/{dataset_id}", status_code=status.HTTP_204_NO_CONTENT, responses=ERROR_RESPONSES)
def delete_dataset(
    session: SessionDep, ctx: ContextDep, store: StoreDep, background: BackgroundTasks, dataset_id: str
) -> None:
    """Rows go at once, and an active run is cancelled; its derived objects and exports go once that is
    committed (after the response)."""
    deletion = operations.delete_dataset(session, dataset_id, store)
    background.add_task(operations.remove_objects, store, deletion.keys)
    if deletion.cancelled_run_id:
        background.add_task(pipeline.cancel_flow_run, ctx, deletion.cancelled_run_id)


@router.get("/datasets/{dataset_id}/stats", response_model=DatasetStats)
def read_dataset_stats(session: SessionDep, dataset_id: str) -> DatasetStats:
    dataset = crud.get_or_404(session, Dataset, dataset_id)
    return DatasetStats.model_validate(operations.dataset_stats(session, dataset))
