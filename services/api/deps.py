"""Request dependencies as Annotated aliases: settings, context, catalog session, object store, token."""

from __future__ import annotations

import functools
import inspect
import secrets
from collections.abc import Callable, Iterator, Mapping
from functools import lru_cache
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request, status
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import select
from sqlalchemy.orm import Session

from loraforge import users
from loraforge.catalog.models import Dataset, Export, Image, Task, Training, Workspace
from loraforge.config import Settings, get_settings
from loraforge.errors import NotFound
from loraforge.stages.context import Context, open_context
from loraforge.storage import ObjectStore, StoreConfig, open_store
from loraforge.users import ADMIN, Principal

_bearer = HTTPBearer(
    auto_error=False, description="LORAFORGE_API_TOKEN (admin), or a user's token from `loraforge users add`."
)


def get_settings_dep() -> Settings:
    return get_settings()


SettingsDep = Annotated[Settings, Depends(get_settings_dep)]


def get_context(settings: SettingsDep) -> Context:
    return open_context(settings)


ContextDep = Annotated[Context, Depends(get_context)]


def get_session(ctx: ContextDep) -> Iterator[Session]:
    """A catalog session committed when the handler returns, before the response is sent."""
    with ctx.catalog.session() as session:
        yield session


# scope="function": commit (and report a failed commit) before the client sees a success.
SessionDep = Annotated[Session, Depends(get_session, scope="function")]


@lru_cache(maxsize=8)
def _store_for(config: StoreConfig) -> ObjectStore:
    # One client per store configuration: an S3 client checks its bucket once, not on every request.
    return open_store(config)


def get_store(ctx: ContextDep) -> ObjectStore:
    return _store_for(ctx.store_config)


StoreDep = Annotated[ObjectStore, Depends(get_store)]


def current_principal(
    settings: SettingsDep,
    session: SessionDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    """Who calls: the admin (LORAFORGE_API_TOKEN, or anyone when no token is configured) or a user (their
    own token, `loraforge users add`). 401 for a wrong token, or none when a token is configured."""
    given = credentials.credentials if credentials and credentials.scheme.lower() == "bearer" else ""
    expected = settings.api_token
    if given and expected and secrets.compare_digest(given.encode(), expected.encode()):
        return ADMIN
    if given:
        user = users.user_for_token(session, given)
        release_connection(session)
        if user is not None:
            return Principal(user_id=user.id, name=user.name)
    elif not expected:
        return ADMIN  # no auth configured: a local, single-user API
    raise HTTPException(
        status_code=status.HTTP_401_UNAUTHORIZED,
        detail="missing or wrong bearer token",
        headers={"WWW-Authenticate": "Bearer"},
    )


PrincipalDep = Annotated[Principal, Depends(current_principal)]


def authorize(request: Request, session: SessionDep, principal: PrincipalDep) -> None:
    """Every protected route: the caller must hold a role in the workspace the path's resource belongs to.

    Reads need viewer, changes editor, deletions owner. A workspace the caller has no role in is a 404, as
    if it did not exist. Routes without a resource in their path (list and create workspaces) filter by
    the principal themselves.
    """
    if principal.is_admin:
        return
    try:
        workspace_id = workspace_of(session, request.path_params)
    finally:
        release_connection(session)
    if workspace_id is None:
        return
    method = request.method.upper()
    needed: users.Role = (
        "viewer" if method in ("GET", "HEAD") else "owner" if method == "DELETE" else "editor"
    )
    users.require_role(session, principal, workspace_id, needed)
    release_connection(session)


def release_connection(session: Session) -> None:
    """End the read transaction so its connection goes back to the pool now.

    Each sync dependency and the handler run in a separate hop through the thread pool. A connection kept
    across a hop is held while the request waits for a free thread, and under load the threads then wait
    for connections that waiting requests hold: the API stalled until the pool timed out. Nothing is
    pending here (only reads), so this commits nothing.
    """
    session.commit()


# Path parameter -> how to find the workspace of the resource it names.
_OWNERS: tuple[tuple[str, Any], ...] = (
    ("workspace_id", lambda s, i: s.scalar(select(Workspace.id).where(Workspace.id == i))),
    ("dataset_id", lambda s, i: s.scalar(select(Dataset.workspace_id).where(Dataset.id == i))),
    (
        "image_id",
        lambda s, i: s.scalar(select(Dataset.workspace_id).join(Image).where(Image.id == i)),
    ),
    (
        "export_id",
        lambda s, i: s.scalar(select(Dataset.workspace_id).join(Export).where(Export.id == i)),
    ),
    ("task_id", lambda s, i: s.scalar(select(Dataset.workspace_id).join(Task).where(Task.id == i))),
    (
        "training_id",
        lambda s, i: s.scalar(select(Dataset.workspace_id).join(Training).where(Training.id == i)),
    ),
)


def workspace_of(session: Session, params: Mapping[str, str]) -> str | None:
    """The workspace id of the first resource the path names; NotFound when that resource does not exist."""
    for name, lookup in _OWNERS:
        if name in params:
            workspace_id = lookup(session, params[name])
            if workspace_id is None:
                raise NotFound(f"{name.removesuffix('_id')} {params[name]} not found")
            return str(workspace_id)
    return None


class ReleasingRoute(APIRoute):
    """A route whose handler ends its catalog transaction in its own thread, as soon as it returns.

    FastAPI runs a sync handler, then validates its response, in two hops through the thread pool. A
    session kept open between them holds its connection while the request waits for a thread; under load
    every thread then waited for a connection held by a request waiting for a thread, and the API stalled
    (wrk at 100 connections: 0 requests in 20 s). Committing here also keeps "committed before the client
    sees a success": a failed commit is the handler's error.
    """

    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        super().__init__(path, _ending_transactions(endpoint), **kwargs)


def _ending_transactions(endpoint: Callable[..., Any]) -> Callable[..., Any]:
    if inspect.iscoroutinefunction(endpoint):
        return endpoint  # async handlers run on the event loop: no hop to wait for

    @functools.wraps(endpoint)
    def handler(*args: Any, **kwargs: Any) -> Any:
        result = endpoint(*args, **kwargs)
        for value in kwargs.values():
            if isinstance(value, Session):
                release_connection(value)
        return result

    return handler
