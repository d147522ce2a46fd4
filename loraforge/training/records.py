"""The catalog side of trainings: the one-active-training rule, the row a started training gets, and how
what Replicate reports lands in it."""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from loraforge.catalog.models import Training
from loraforge.errors import Conflict, NotFound
from loraforge.training.provider import RemoteTraining

PROVIDER = "replicate"
LOGS_TAIL_CHARS = 4000
"""How much of a training's log the row keeps: the end, where the progress and the error are."""


class TrainingStatus(StrEnum):
    """Replicate's statuses, upper-cased like every other status in the catalog."""

    STARTING = "STARTING"
    PROCESSING = "PROCESSING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    CANCELED = "CANCELED"


ACTIVE = (TrainingStatus.STARTING, TrainingStatus.PROCESSING)
FINAL = (TrainingStatus.SUCCEEDED, TrainingStatus.FAILED, TrainingStatus.CANCELED)


def get_training(session: Session, training_id: str) -> Training:
    training = session.get(Training, training_id)
    if training is None:
        raise NotFound(f"training {training_id} not found")
    return training


def find_training(session: Session, reference: str) -> Training:
    """A training by id, unique id prefix, or Replicate's id for it."""
    reference = reference.strip()
    exact = session.get(Training, reference)
    if exact is not None:
        return exact
    rows = session.scalars(
        select(Training)
        .where(or_(Training.id.startswith(reference, autoescape=True), Training.remote_id == reference))
        .limit(2)
    ).all()
    if not reference or not rows:
        raise NotFound(f"training {reference!r} not found")
    if len(rows) > 1:
        raise NotFound(f"training {reference!r} is ambiguous: give more of its id")
    return rows[0]


def by_remote_id(session: Session, remote_id: str) -> Training | None:
    query = select(Training).where(Training.provider == PROVIDER, Training.remote_id == remote_id)
    return session.scalars(query.limit(1)).first()


def list_trainings(session: Session, dataset_id: str) -> Sequence[Training]:
    query = select(Training).where(Training.dataset_id == dataset_id)
    return session.scalars(query.order_by(Training.created_at.desc())).all()


def active_training(session: Session, dataset_id: str, destination: str) -> Training | None:
    """The training of this dataset into this destination that Replicate is still running, if any."""
    query = select(Training).where(
        Training.dataset_id == dataset_id,
        Training.destination == destination,
        Training.status.in_(tuple(ACTIVE)),
    )
    return session.scalars(query.order_by(Training.created_at.desc()).limit(1)).first()


def refuse_if_active(session: Session, dataset_id: str, destination: str) -> None:
    """Conflict when a training of the dataset into the destination is still running."""
    running = active_training(session, dataset_id, destination)
    if running is not None:
        raise Conflict(
            f"a training of this dataset into {destination} is already {running.status.lower()} "
            f"(training {running.id}, Replicate {running.remote_id}); follow it with "
            f"`loraforge trainings show {running.id}` or cancel it with "
            f"`loraforge trainings cancel {running.id}`"
        )


def trainings_to_sync(session: Session) -> list[Training]:
    """Rows the status sync has work on: still running, or succeeded with their weights not stored yet."""
    query = select(Training).where(
        or_(
            Training.status.in_(tuple(ACTIVE)),
            (Training.status == TrainingStatus.SUCCEEDED)
            & Training.weights_url.is_not(None)
            & Training.weights_key.is_(None),
        )
    )
    return list(session.scalars(query.order_by(Training.created_at)))


def record_started(
    session: Session,
    *,
    dataset_id: str,
    export_id: str,
    destination: str,
    params: dict[str, Any],
    remote: RemoteTraining,
    task_id: str | None,
) -> Training:
    """The row of a training Replicate accepted; the trainer version is the one Replicate says ran."""
    training = Training(
        dataset_id=dataset_id,
        export_id=export_id,
        provider=PROVIDER,
        trainer_version=remote.trainer_version,
        destination=destination,
        params=params,
        status=TrainingStatus.STARTING,
        remote_id=remote.id,
        task_id=task_id,
    )
    apply_remote(training, remote)
    session.add(training)
    session.flush()
    return training


def status_of(remote: RemoteTraining) -> TrainingStatus:
    try:
        return TrainingStatus(remote.status.upper())
    except ValueError:
        # A status this version does not know yet (Replicate added one): the training is still going.
        return TrainingStatus.PROCESSING


def apply_remote(training: Training, remote: RemoteTraining) -> bool:
    """Bring the row up to what Replicate reports; False when the report is older than the row.

    Reports can arrive out of order (a late webhook after a poll saw the end): a finished row is never
    moved back to running, and logs, error and output are only ever added to, never blanked.
    """
    status = status_of(remote)
    if training.status in FINAL and status != training.status:
        return False
    training.status = status
    if remote.logs is not None and remote.logs.strip():
        training.logs_tail = remote.logs[-LOGS_TAIL_CHARS:]
    if remote.error:
        training.error = remote.error[:4000]
    if remote.output_version:
        training.output_version = remote.output_version
    if remote.weights_url:
        training.weights_url = remote.weights_url
    if training.trainer_version is None and remote.trainer_version:
        training.trainer_version = remote.trainer_version
    return True


def needs_weights(training: Training) -> bool:
    succeeded = training.status == TrainingStatus.SUCCEEDED
    return succeeded and bool(training.weights_url) and not training.weights_key


def as_dict(training: Training) -> dict[str, Any]:
    """The row as the CLI prints it (`--json`)."""
    return {
        "id": training.id,
        "dataset_id": training.dataset_id,
        "export_id": training.export_id,
        "task_id": training.task_id,
        "provider": training.provider,
        "trainer_version": training.trainer_version,
        "destination": training.destination,
        "params": training.params,
        "status": training.status,
        "remote_id": training.remote_id,
        "output_version": training.output_version,
        "weights_url": training.weights_url,
        "weights_key": training.weights_key,
        "error": training.error,
        "logs_tail": training.logs_tail,
        "created_at": training.created_at.isoformat(),
        "updated_at": training.updated_at.isoformat(),
    }
