"""Tasks: the progress rows that long-running work keeps up to date."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from loraforge.catalog.models import Dataset, Task
from services.api import crud
from services.api.deps import SessionDep
from services.api.schemas import TaskPublic, TasksPublic

router = APIRouter(tags=["tasks"])


@router.get("/datasets/{dataset_id}/tasks", response_model=TasksPublic)
def read_tasks(
    session: SessionDep, dataset_id: str, limit: Annotated[int, Query(ge=1, le=500)] = 50
) -> TasksPublic:
    crud.get_or_404(session, Dataset, dataset_id)
    rows = crud.list_tasks(session, dataset_id, limit=limit)
    return TasksPublic(data=[TaskPublic.model_validate(row) for row in rows], count=len(rows))


@router.get("/tasks/{task_id}", response_model=TaskPublic)
def read_task(session: SessionDep, task_id: str) -> TaskPublic:
    return TaskPublic.model_validate(crud.get_or_404(session, Task, task_id))
