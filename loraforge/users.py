"""Users, their tokens and their roles in workspaces: who may read or change what through the API.

A token is shown once, when the user is added; the catalog keeps its SHA-256 only (tokens are 256 random
bits, so a fast hash is enough: nothing to brute-force). `LORAFORGE_API_TOKEN` stays the admin token.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from typing import Literal

from sqlalchemy import select
from sqlalchemy.orm import Session

from loraforge.catalog.models import Membership, User, Workspace
from loraforge.errors import Conflict, Forbidden, InvalidInput, NotFound

Role = Literal["viewer", "editor", "owner"]
ROLES: tuple[Role, ...] = ("viewer", "editor", "owner")
"""In rising order: each role may do what the ones before it may."""
TOKEN_PREFIX = "lfu_"


@dataclass(frozen=True)
class Principal:
    """Who is calling: the admin (the API token, or no auth configured) or a user."""

    user_id: str | None
    name: str

    @property
    def is_admin(self) -> bool:
        return self.user_id is None


ADMIN = Principal(user_id=None, name="admin")


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def add_user(session: Session, name: str) -> tuple[User, str]:
    """Create a user; returns the row and the token, which is not stored and cannot be shown again."""
    name = name.strip()
    if not name or not name.isprintable():
        raise InvalidInput("a user name must be printable and not blank")
    if session.scalar(select(User).where(User.name == name)) is not None:
        raise Conflict(f"user {name!r} already exists")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    user = User(name=name, token_hash=hash_token(token))
    session.add(user)
    session.flush()
    return user, token


def user_for_token(session: Session, token: str) -> User | None:
    if not token.startswith(TOKEN_PREFIX):
        return None
    return session.scalar(select(User).where(User.token_hash == hash_token(token)))


def get_user(session: Session, name: str) -> User:
    user = session.scalar(select(User).where(User.name == name))
    if user is None:
        raise NotFound(f"user {name!r} not found")
    return user


def get_user_by_id(session: Session, user_id: str) -> User:
    user = session.get(User, user_id)
    if user is None:
        raise NotFound(f"user {user_id} not found")
    return user


def grant(session: Session, workspace: Workspace, user: User, role: Role) -> Membership:
    """Give (or change) a user's role in a workspace."""
    if role not in ROLES:
        raise InvalidInput(f"role must be one of {', '.join(ROLES)}")
    membership = session.get(Membership, (workspace.id, user.id))
    if membership is None:
        membership = Membership(workspace_id=workspace.id, user_id=user.id, role=role)
        session.add(membership)
    else:
        membership.role = role
    session.flush()
    return membership


def revoke(session: Session, workspace: Workspace, user: User) -> None:
    membership = session.get(Membership, (workspace.id, user.id))
    if membership is None:
        raise NotFound(f"{user.name} has no role in {workspace.name}")
    session.delete(membership)


def role_in(session: Session, principal: Principal, workspace_id: str) -> Role | None:
    """The principal's role in the workspace; the admin owns every workspace."""
    if principal.is_admin:
        return "owner"
    membership = session.get(Membership, (workspace_id, principal.user_id))
    return membership.role if membership is not None else None  # type: ignore[return-value]


def require_role(session: Session, principal: Principal, workspace_id: str, needed: Role) -> None:
    """NotFound when the principal may not see the workspace (its existence is not revealed), Forbidden
    when it may see but not do this."""
    role = role_in(session, principal, workspace_id)
    if role is None:
        raise NotFound("not found")
    if ROLES.index(role) < ROLES.index(needed):
        raise Forbidden(f"{principal.name} is a {role} of this workspace; this needs {needed}")


def visible_workspace_ids(session: Session, principal: Principal) -> list[str] | None:
    """The workspaces the principal may see; None means all (the admin)."""
    if principal.is_admin:
        return None
    return list(
        session.scalars(select(Membership.workspace_id).where(Membership.user_id == principal.user_id))
    )
