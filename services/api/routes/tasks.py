"""Tasks: the progress rows that long-running work keeps up to date."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from loraforge import tasks
from loraforge.catalog.models import Dataset, Task
from services.api import crud, pipeline
from services.api.deps import ContextDep, ReleasingRoute, SessionDep
from services.api.schemas import ERROR_RESPONSES, TaskPublic, TasksPublic

router = APIRouter(route_class=ReleasingRoute, tags=["tasks"])


@router.get("/datasets/{dataset_id}/tasks", response_model=TasksPublic)
def read_tasks(
    session: SessionDep, ctx: ContextDep, dataset_id: str, limit: Annotated[int, Query(ge=1, le=500)] = 50
) -> TasksPublic:
    crud.get_or_404(session, Dataset, dataset_id)
    tasks.reap(session, stale_after_s=ctx.settings.task_stale_after_s, dataset_id=dataset_id)
    rows = crud.list_tasks(session, dataset_id, limit=limit)
    return TasksPublic(data=[TaskPublic.model_validate(row) for row in rows], count=len(rows))


@router.get("/tasks/{task_id}", response_model=TaskPublic)
def read_task(session: SessionDep, ctx: ContextDep, task_id: str) -> TaskPublic:
    """A task; a running one whose heartbeat stopped is reported CRASHED, with the reason."""
    task = crud.get_or_404(session, Task, task_id)
    if task.dataset_id and task.status == tasks.TaskStatus.RUNNING:
        tasks.reap(session, stale_after_s=ctx.settings.task_stale_after_s, dataset_id=task.dataset_id)
    return TaskPublic.model_validate(task)


@router.post("/tasks/{task_id}/cancel", response_model=TaskPublic, responses=ERROR_RESPONSES)
def cancel_task(ctx: ContextDep, task_id: str) -> TaskPublic:
    """Cancel a pending or running task (409 when it has finished); the run stops at its next heartbeat."""
    pipeline.cancel(ctx, task_id)
    with ctx.catalog.session() as session:
        return TaskPublic.model_validate(tasks.get_task(session, task_id))
