"""Catalog reads and writes the API needs beyond loraforge.catalog.queries; each raises NotFound/Conflict."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from loraforge.catalog.models import (
    Base,
    Caption,
    Dataset,
    Face,
    Image,
    ImageMetadata,
    Task,
    Training,
    Workspace,
)
from loraforge.catalog.queries import TARGET_MODELS
from loraforge.errors import Conflict, InvalidInput, NotFound

M = TypeVar("M", bound=Base)


def get_or_404(session: Session, model: type[M], row_id: str) -> M:
    row = session.get(model, row_id)
    if row is None:
        raise NotFound(f"{model.__tablename__.rstrip('s')} {row_id} not found")
    return row


def list_workspaces(session: Session) -> list[Workspace]:
    return list(session.scalars(select(Workspace).order_by(Workspace.name)))


def create_workspace(session: Session, *, name: str) -> Workspace:
    if session.scalar(select(Workspace).where(Workspace.name == name)) is not None:
        raise Conflict(f"workspace {name!r} already exists")
    workspace = Workspace(name=name)
    session.add(workspace)
    session.flush()
    return workspace


def list_datasets(session: Session, workspace_id: str) -> list[Dataset]:
    get_or_404(session, Workspace, workspace_id)
    return list(
        session.scalars(select(Dataset).where(Dataset.workspace_id == workspace_id).order_by(Dataset.name))
    )


def create_dataset(session: Session, workspace_id: str, *, name: str, **fields: Any) -> Dataset:
    get_or_404(session, Workspace, workspace_id)
    taken = select(Dataset).where(Dataset.workspace_id == workspace_id, Dataset.name == name)
    if session.scalar(taken) is not None:
        raise Conflict(f"dataset {name!r} already exists in this workspace")
    dataset = Dataset(workspace_id=workspace_id, name=name, **fields)
    session.add(dataset)
    session.flush()
    return dataset


def update_dataset(session: Session, dataset: Dataset, changes: dict[str, Any]) -> Dataset:
    """Apply the given fields; settings are merged so stage bookkeeping stored there survives."""
    target = changes.get("target_model")
    if target is not None and target not in TARGET_MODELS:
        raise InvalidInput(f"target model must be one of {', '.join(TARGET_MODELS)}")
    for key, value in changes.items():
        if key == "settings":
            dataset.settings = {**(dataset.settings or {}), **(value or {})}
        else:
            setattr(dataset, key, value)
    session.flush()
    return dataset


def list_images(
    session: Session, dataset_id: str, *, statuses: Sequence[str] = (), offset: int = 0, limit: int = 100
) -> tuple[list[Image], int]:
    """One page of a dataset's images in a stable order, and how many match in all."""
    where = [Image.dataset_id == dataset_id]
    if statuses:
        where.append(Image.status.in_(tuple(statuses)))
    count = session.scalar(select(func.count()).select_from(Image).where(*where)) or 0
    page = session.scalars(
        select(Image).where(*where).order_by(Image.original_filename, Image.id).offset(offset).limit(limit)
    )
    return list(page), count


def image_metadata(session: Session, image_id: str) -> dict[str, Any]:
    query = select(ImageMetadata.key, ImageMetadata.value).where(ImageMetadata.image_id == image_id)
    return {key: value for key, value in session.execute(query)}


def image_captions(session: Session, image_id: str) -> list[Caption]:
    query = select(Caption).where(Caption.image_id == image_id)
    return list(session.scalars(query.order_by(Caption.created_at, Caption.id)))


def image_faces(session: Session, image_id: str) -> list[Face]:
    return list(session.scalars(select(Face).where(Face.image_id == image_id).order_by(Face.score.desc())))


def list_tasks(session: Session, dataset_id: str, *, limit: int = 50) -> list[Task]:
    query = select(Task).where(Task.dataset_id == dataset_id).order_by(Task.created_at.desc(), Task.id)
    return list(session.scalars(query.limit(limit)))


def list_trainings(session: Session, dataset_id: str) -> list[Training]:
    query = select(Training).where(Training.dataset_id == dataset_id).order_by(Training.created_at.desc())
    return list(session.scalars(query))
