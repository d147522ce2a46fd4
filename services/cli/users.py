"""`loraforge users` and `loraforge workspaces`: who may use the API, and their role in each workspace."""

from __future__ import annotations

import typer
from sqlalchemy import select

from loraforge import users
from loraforge.catalog.models import Membership, User, Workspace
from loraforge.errors import InvalidInput, NotFound
from services.cli.main import app, emit_json, err_console, handle_errors, out_console
from services.cli.runtime import cli_context

users_app = typer.Typer(help="API users and their tokens.", no_args_is_help=True)
app.add_typer(users_app, name="users")
workspaces_app = typer.Typer(help="Workspaces and who may use them.", no_args_is_help=True)
app.add_typer(workspaces_app, name="workspaces")


@users_app.command("add")
@handle_errors
def add(name: str = typer.Argument(..., help="A name people recognise, e.g. an email.")) -> None:
    """Create a user and print their API token (shown this once; only its hash is kept)."""
    ctx = cli_context()
    with ctx.catalog.session() as session:
        user, token = users.add_user(session, name)
    err_console.print(f"user {user.name} created; their token (shown once):", highlight=False)
    out_console.print(token, highlight=False, soft_wrap=True)


@users_app.command("list")
@handle_errors
def list_users(as_json: bool = typer.Option(False, "--json")) -> None:
    """Users with their roles."""
    ctx = cli_context()
    with ctx.catalog.session() as session:
        rows = [
            {
                "name": user.name,
                "roles": {
                    workspace: role
                    for workspace, role in session.execute(
                        select(Workspace.name, Membership.role)
                        .join(Membership, Membership.workspace_id == Workspace.id)
                        .where(Membership.user_id == user.id)
                    )
                },
            }
            for user in session.scalars(select(User).order_by(User.name))
        ]
    if as_json:
        emit_json(rows)
        return
    for row in rows:
        roles = ", ".join(f"{ws}: {role}" for ws, role in row["roles"].items()) or "no workspace"
        out_console.print(f"{row['name']}  ({roles})", highlight=False)


@workspaces_app.command("grant")
@handle_errors
def grant(
    workspace: str = typer.Argument(..., help="Workspace name (created if new)."),
    user: str = typer.Argument(..., help="User name."),
    role: str = typer.Option("editor", "--role", help="viewer, editor or owner."),
) -> None:
    """Give a user a role in a workspace (or change it)."""
    from loraforge.catalog.queries import get_or_create_workspace

    if role not in users.ROLES:
        raise InvalidInput(f"--role: must be one of {', '.join(users.ROLES)}, not {role!r}")
    ctx = cli_context()
    with ctx.catalog.session() as session:
        target = users.get_user(session, user)
        users.grant(session, get_or_create_workspace(session, workspace), target, role)  # type: ignore[arg-type]
    out_console.print(f"{user} is now {role} of {workspace}", highlight=False)


@workspaces_app.command("revoke")
@handle_errors
def revoke(workspace: str = typer.Argument(...), user: str = typer.Argument(...)) -> None:
    """Take a user's role in a workspace away."""
    ctx = cli_context()
    with ctx.catalog.session() as session:
        found = session.scalar(select(Workspace).where(Workspace.name == workspace))
        if found is None:
            raise NotFound(f"workspace {workspace!r} not found")
        users.revoke(session, found, users.get_user(session, user))
    out_console.print(f"{user} has no role in {workspace} any more", highlight=False)
