"""Workspaces: list and create."""

from __future__ import annotations

from fastapi import APIRouter, status

from services.api import crud
from services.api.deps import SessionDep
from services.api.schemas import WorkspaceCreate, WorkspacePublic, WorkspacesPublic

router = APIRouter(prefix="/workspaces", tags=["workspaces"])


@router.get("", response_model=WorkspacesPublic)
def read_workspaces(session: SessionDep) -> WorkspacesPublic:
    rows = crud.list_workspaces(session)
    return WorkspacesPublic(data=[WorkspacePublic.model_validate(row) for row in rows], count=len(rows))


@router.post("", response_model=WorkspacePublic, status_code=status.HTTP_201_CREATED)
def create_workspace(session: SessionDep, body: WorkspaceCreate) -> WorkspacePublic:
    return WorkspacePublic.model_validate(crud.create_workspace(session, name=body.name.strip()))
