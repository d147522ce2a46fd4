"""Workspaces: list and create."""

from __future__ import annotations

from fastapi import APIRouter, status

from loraforge import users
from services.api import crud
from services.api.deps import PrincipalDep, ReleasingRoute, SessionDep
from services.api.schemas import WorkspaceCreate, WorkspacePublic, WorkspacesPublic

router = APIRouter(route_class=ReleasingRoute, prefix="/workspaces", tags=["workspaces"])


@router.get("", response_model=WorkspacesPublic)
def read_workspaces(session: SessionDep, principal: PrincipalDep) -> WorkspacesPublic:
    """The workspaces the caller has a role in (all of them for the admin)."""
    rows = crud.list_workspaces(session)
    visible = users.visible_workspace_ids(session, principal)
    if visible is not None:
        rows = [row for row in rows if row.id in visible]
    return WorkspacesPublic(data=[WorkspacePublic.model_validate(row) for row in rows], count=len(rows))


@router.post("", response_model=WorkspacePublic, status_code=status.HTTP_201_CREATED)
def create_workspace(session: SessionDep, principal: PrincipalDep, body: WorkspaceCreate) -> WorkspacePublic:
    """A new workspace; a user who creates one becomes its owner."""
    workspace = crud.create_workspace(session, name=body.name.strip())
    if not principal.is_admin:
        users.grant(session, workspace, users.get_user_by_id(session, principal.user_id or ""), "owner")
    return WorkspacePublic.model_validate(workspace)
