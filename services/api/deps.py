"""Request dependencies as Annotated aliases: settings, context, catalog session, object store, token."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from functools import lru_cache
from typing import Annotated

from fastapi import Depends, HTTPException, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from loraforge.config import Settings, get_settings
from loraforge.stages.context import Context, open_context
from loraforge.storage import ObjectStore, StoreConfig, open_store

_bearer = HTTPBearer(auto_error=False, description="The token set in LORAFORGE_API_TOKEN.")


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


def require_token(
    settings: SettingsDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> str | None:
    """The caller's bearer token; 401 unless it matches LORAFORGE_API_TOKEN (when one is set)."""
    expected = settings.api_token
    if not expected:
        return None
    given = credentials.credentials if credentials and credentials.scheme.lower() == "bearer" else ""
    if not given or not secrets.compare_digest(given.encode(), expected.encode()):
        raise HTTPException(
            status_code=status.HTTP_401_UNAUTHORIZED,
            detail="missing or wrong bearer token",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return given


CurrentToken = Annotated[str | None, Depends(require_token)]
