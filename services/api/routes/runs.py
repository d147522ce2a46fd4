"""Runs: start a pipeline stage on a dataset; answers 202 with the task to poll."""

from __future__ import annotations

from fastapi import APIRouter, Body, status

from loraforge.catalog.models import Dataset
from services.api import crud, pipeline
from services.api.deps import ContextDep, SessionDep
from services.api.schemas import RunRequest, TaskAccepted

router = APIRouter(tags=["runs"])


@router.post(
    "/datasets/{dataset_id}/runs/{stage}", response_model=TaskAccepted, status_code=status.HTTP_202_ACCEPTED
)
def create_run(
    session: SessionDep,
    ctx: ContextDep,
    dataset_id: str,
    stage: pipeline.StageName,
    body: RunRequest = Body(default_factory=RunRequest),
) -> TaskAccepted:
    """`params` are extra keyword arguments of the stage's flow (ingest needs `sources`)."""
    dataset = crud.get_or_404(session, Dataset, dataset_id)
    task_id = pipeline.launch(
        ctx,
        stage=stage,
        dataset_id=dataset.id,
        dataset=dataset.name,
        workspace=dataset.workspace.name,
        params=body.params,
    )
    return TaskAccepted(task_id=task_id, kind=stage.value, status="PENDING")
