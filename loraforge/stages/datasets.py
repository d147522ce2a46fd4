"""Datasets as every client names them: find or create one by name, and the words captions are built on."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from loraforge.catalog import queries
from loraforge.catalog.models import Dataset, Image, Workspace
from loraforge.errors import NotFound


def ensure_dataset(
    session: Session,
    name: str,
    workspace: str = queries.DEFAULT_WORKSPACE,
    *,
    trigger: str | None = None,
    class_word: str | None = None,
    target: str | None = None,
) -> Dataset:
    """The named dataset, created when missing; given words and target update it (stripped; blank clears)."""
    return queries.get_or_create_dataset(
        session,
        name.strip(),
        workspace.strip() or queries.DEFAULT_WORKSPACE,
        trigger_word=_word(trigger),
        class_word=_word(class_word),
        target_model=target,
    )


def find_dataset(session: Session, name: str, workspace: str = queries.DEFAULT_WORKSPACE) -> Dataset:
    return queries.find_dataset(session, name.strip(), workspace.strip() or queries.DEFAULT_WORKSPACE)


def get_dataset(session: Session, dataset_id: str) -> Dataset:
    dataset = session.get(Dataset, dataset_id)
    if dataset is None:
        raise NotFound(f"dataset {dataset_id} not found")
    return dataset


def apply_dataset_words(
    session: Session, dataset_id: str, *, trigger: str | None = None, class_word: str | None = None
) -> Dataset:
    """Save a trigger or class word given with a run on the dataset; returns the dataset."""
    dataset = get_dataset(session, dataset_id)
    if trigger is not None:
        dataset.trigger_word = _word(trigger)
    if class_word is not None:
        dataset.class_word = _word(class_word)
    session.flush()
    return dataset


def _word(value: str | None) -> str | None:
    """None leaves the field as it is; text is stripped, and blank text becomes "" (cleared)."""
    return None if value is None else " ".join(value.split())


def list_datasets(session: Session, workspace: str | None = None) -> list[dict[str, Any]]:
    """Every dataset (of one workspace, or all), oldest first, with its words, target and pictures per
    status: what `loraforge datasets` lists."""
    query = select(Dataset, Workspace.name).join(Workspace, Workspace.id == Dataset.workspace_id)
    if workspace is not None:
        query = query.where(Workspace.name == workspace)
    rows = session.execute(query.order_by(Dataset.created_at, Dataset.name)).all()
    counts: dict[str, dict[str, int]] = {}
    per_status = select(Image.dataset_id, Image.status, func.count()).group_by(Image.dataset_id, Image.status)
    for dataset_id, status, count in session.execute(per_status):
        counts.setdefault(dataset_id, {})[status] = count
    return [
        {
            "name": dataset.name,
            "workspace": workspace_name,
            "trigger_word": dataset.trigger_word,
            "class_word": dataset.class_word,
            "target_model": dataset.target_model,
            "images": sum(counts.get(dataset.id, {}).values()),
            "by_status": dict(sorted(counts.get(dataset.id, {}).items())),
            "created_at": dataset.created_at.isoformat(),
        }
        for dataset, workspace_name in rows
    ]
