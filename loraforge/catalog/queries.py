"""Reusable catalog queries: workspaces, datasets, images and the current bucket of each picture.

The tasks table has its own module, loraforge.tasks (the task lifecycle)."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.orm import Session

from loraforge.catalog.models import Dataset, Derivative, Image, Workspace
from loraforge.catalog.names import DEFAULT_WORKSPACE  # noqa: F401 - re-exported
from loraforge.errors import InvalidInput, NotFound
from loraforge.targets import TARGET_MODELS


def get_or_create_workspace(session: Session, name: str = DEFAULT_WORKSPACE) -> Workspace:
    workspace = session.scalar(select(Workspace).where(Workspace.name == name))
    if workspace is None:
        workspace = Workspace(name=name)
        session.add(workspace)
        session.flush()
    return workspace


def find_dataset(session: Session, name: str, workspace: str = DEFAULT_WORKSPACE) -> Dataset:
    dataset = session.scalar(
        select(Dataset).join(Workspace).where(Dataset.name == name, Workspace.name == workspace)
    )
    if dataset is None:
        raise NotFound(f"dataset {name!r} not found in workspace {workspace!r}")
    return dataset


def get_or_create_dataset(
    session: Session,
    name: str,
    workspace: str = DEFAULT_WORKSPACE,
    *,
    trigger_word: str | None = None,
    class_word: str | None = None,
    target_model: str | None = None,
) -> Dataset:
    """The named dataset, created when missing; given options update an existing one."""
    if not name.strip():
        raise InvalidInput("dataset name must not be empty")
    if target_model is not None and target_model not in TARGET_MODELS:
        raise InvalidInput(f"target model must be one of {', '.join(TARGET_MODELS)}, not {target_model!r}")
    try:
        dataset = find_dataset(session, name, workspace)
    except NotFound:
        ws = get_or_create_workspace(session, workspace)
        dataset = Dataset(workspace_id=ws.id, name=name, target_model=target_model or "sdxl", settings={})
        session.add(dataset)
    if trigger_word is not None:
        dataset.trigger_word = trigger_word
    if class_word is not None:
        dataset.class_word = class_word
    if target_model is not None:
        dataset.target_model = target_model
    session.flush()
    return dataset


def dataset_images(
    session: Session, dataset_id: str, *, statuses: tuple[str, ...] | None = None
) -> list[Image]:
    query = select(Image).where(Image.dataset_id == dataset_id)
    if statuses:
        query = query.where(Image.status.in_(statuses))
    return list(session.scalars(query.order_by(Image.original_filename, Image.id)))


BUCKET_KIND = "bucket"


def current_buckets(
    session: Session, dataset: Dataset, ids: Iterable[str] | None = None
) -> dict[str, Derivative]:
    """Image id -> its bucket derivative under the dataset's current bucket parameters (the last bucket run);
    before any parameters are current, the newest derivative of each picture. The one "current bucket"
    query: the report, the export, the API and the statistics all use it."""
    query = select(Derivative).join(Image, Image.id == Derivative.image_id)
    query = query.where(Image.dataset_id == dataset.id, Derivative.kind == BUCKET_KIND)
    if ids is not None:
        query = query.where(Derivative.image_id.in_(list(ids)))
    params_hash = (dataset.settings or {}).get("bucket_params_hash")
    if params_hash:
        query = query.where(Derivative.params_hash == params_hash)
    latest: dict[str, Derivative] = {}
    for row in session.scalars(query.order_by(Derivative.created_at, Derivative.id)):
        latest[row.image_id] = row
    return latest
