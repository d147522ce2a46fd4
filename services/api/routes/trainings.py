"""Trainings on Replicate: start one from a dataset, read them, refresh one, cancel it, download its weights.

Starting answers 202 with the `train` task to poll (GET /tasks/{id}): the export, the upload and the
training's creation run in the background, and the training row appears once Replicate has accepted it.
The inputs are checked against the trainer's schema before that (422), and a training of the dataset into
the same destination that is still running is a 409. The Replicate token is REPLICATE_API_TOKEN in the
API's environment: no request carries it and no response shows it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from fastapi import APIRouter, HTTPException, status
from fastapi.responses import Response

from loraforge import tasks
from loraforge.catalog.models import Dataset, Training
from loraforge.errors import NotFound
from loraforge.stages.context import Context
from loraforge.stages.datasets import get_dataset
from loraforge.training import provider, records, service
from loraforge.training.options import TrainOptions
from loraforge.training.provider import ProviderUnavailable
from services.api import crud, pipeline
from services.api.deps import ContextDep, ReleasingRoute, SessionDep, StoreDep
from services.api.routes.images import object_response
from services.api.schemas import ErrorPublic, TaskAccepted, TrainingPublic, TrainingsPublic

log = logging.getLogger(__name__)
router = APIRouter(route_class=ReleasingRoute, tags=["trainings"])
T = TypeVar("T")
PROVIDER_ERRORS: dict[int | str, dict[str, Any]] = {
    502: {"model": ErrorPublic, "description": "Replicate could not be reached or kept failing."}
}


def at_replicate(call: Callable[[], T]) -> T:
    """Run a call that reaches Replicate; its outage is a 502 (the API itself is fine)."""
    try:
        return call()
    except ProviderUnavailable as exc:
        raise HTTPException(status_code=status.HTTP_502_BAD_GATEWAY, detail=str(exc)) from None


@router.post(
    "/datasets/{dataset_id}/trainings",
    response_model=TaskAccepted,
    status_code=status.HTTP_202_ACCEPTED,
    responses=PROVIDER_ERRORS,
)
def create_training(
    session: SessionDep, ctx: ContextDep, dataset_id: str, options: TrainOptions
) -> TaskAccepted:
    """Export the dataset for Replicate, upload it and start the trainer; poll the task it answers."""
    dataset = get_dataset(session, dataset_id)
    records.refuse_if_active(session, dataset_id, options.destination)
    trigger_word = dataset.trigger_word
    at_replicate(
        lambda: service.plan_training(provider.replicate_client(), options, trigger_word=trigger_word)
    )
    task_id = launch(ctx, dataset_id, options)
    return TaskAccepted(task_id=task_id, kind="train", status="PENDING")


def launch(ctx: Context, dataset_id: str, options: TrainOptions) -> str:
    """The task row (409 when the dataset is busy), then the train flow in a thread of this process.

    The flow returns once Replicate has the training, so it does not need a worker; following the
    training is the sync flow's and the webhook's work.
    """
    from flows import configure_prefect

    configure_prefect(ctx.settings)  # before the flow module imports prefect, which reads its env once
    from flows.train import train_flow

    with ctx.catalog.session() as session:
        task_id = tasks.create_task(
            session,
            kind="train",
            dataset_id=dataset_id,
            params=options.model_dump(mode="json"),
            stale_after_s=ctx.settings.task_stale_after_s,
        ).id

    def run() -> None:
        try:
            with pipeline.prefect_settings(ctx.settings.prefect_api_url):
                train_flow(dataset_id, options, task_id=task_id)
        except BaseException as exc:  # noqa: BLE001 - a background run records, not propagates, its failure
            log.warning("train run %s ended: %s", task_id, exc)
            # The flow ends its own row once it runs; this covers a failure before it took the row.
            with ctx.catalog.session() as session:
                tasks.end_task(session, task_id, tasks.TaskStatus.FAILED, f"{exc.__class__.__name__}: {exc}")

    threading.Thread(target=run, name=f"loraforge-train-{task_id[:8]}", daemon=True).start()
    return task_id


@router.get("/datasets/{dataset_id}/trainings", response_model=TrainingsPublic)
def read_trainings(session: SessionDep, dataset_id: str) -> TrainingsPublic:
    crud.get_or_404(session, Dataset, dataset_id)
    rows = crud.list_trainings(session, dataset_id)
    return TrainingsPublic(data=[TrainingPublic.model_validate(row) for row in rows], count=len(rows))


@router.get("/trainings/{training_id}", response_model=TrainingPublic)
def read_training(session: SessionDep, training_id: str) -> TrainingPublic:
    """A training as the catalog has it (the sync flow and webhooks keep it current)."""
    return TrainingPublic.model_validate(crud.get_or_404(session, Training, training_id))


@router.post("/trainings/{training_id}/sync", response_model=TrainingPublic, responses=PROVIDER_ERRORS)
def sync_training(ctx: ContextDep, training_id: str) -> TrainingPublic:
    """Refresh a training from Replicate now, storing its weights if it has succeeded."""
    at_replicate(lambda: service.sync_training(ctx, training_id))
    with ctx.catalog.session() as session:
        return TrainingPublic.model_validate(records.get_training(session, training_id))


@router.post("/trainings/{training_id}/cancel", response_model=TrainingPublic, responses=PROVIDER_ERRORS)
def cancel_training(ctx: ContextDep, training_id: str) -> TrainingPublic:
    """Cancel a running training at Replicate (409 once it has finished); its logs so far are kept."""
    at_replicate(lambda: service.cancel_training(ctx, training_id))
    with ctx.catalog.session() as session:
        return TrainingPublic.model_validate(records.get_training(session, training_id))


@router.get("/trainings/{training_id}/weights", response_class=Response)
def download_weights(
    session: SessionDep, store: StoreDep, training_id: str, redirect: bool = False
) -> Response:
    """The trained weights, once the training succeeded and they were copied into the store."""
    training = crud.get_or_404(session, Training, training_id)
    if not training.weights_key:
        raise NotFound(f"training {training_id} has no stored weights (status {training.status.lower()})")
    dataset = crud.get_or_404(session, Dataset, training.dataset_id)
    filename = f"{dataset.name}-{training.id[:8]}-{training.weights_key.rsplit('/', 1)[-1]}"
    return object_response(
        store,
        training.weights_key,
        media_type="application/octet-stream",
        redirect=redirect,
        filename=filename,
    )
