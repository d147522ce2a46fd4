"""Users and roles: each user sees only the workspaces they hold a role in; a viewer cannot change them.

Everything runs on Postgres + the S3 server through the real app, with LORAFORGE_API_TOKEN set (the admin).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from fastapi.testclient import TestClient

from loraforge import users
from loraforge.config import get_settings
from loraforge.stages.context import Context
from tests.api.factories import make_dataset, make_export, make_image, make_task, make_workspace
from tests.conftest import run_cli

API = "/api/v1"
ADMIN_TOKEN = "admin-token"


@dataclass
class Side:
    """One user's workspace, with something in it of every kind the API serves."""

    token: str
    workspace_id: str
    dataset_id: str
    image_id: str
    export_id: str
    task_id: str


@pytest.fixture
def auth_client(ctx: Context, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    from services.api.main import create_app

    monkeypatch.setenv("LORAFORGE_API_TOKEN", ADMIN_TOKEN)
    get_settings.cache_clear()
    with TestClient(create_app()) as client:
        yield client


def _side(ctx: Context, user_name: str, workspace_name: str, role: users.Role = "owner") -> Side:
    with ctx.catalog.session() as session:
        user, token = users.add_user(session, user_name)
        workspace = make_workspace(session, workspace_name)
        users.grant(session, workspace, user, role)
        dataset = make_dataset(session, workspace, name=f"{workspace_name}-data")
        image = make_image(session, ctx.store, dataset)
        export = make_export(session, ctx.store, dataset, {"a.txt": b"caption"})
        task = make_task(session, dataset, status="COMPLETED")
        return Side(token, workspace.id, dataset.id, image.id, export.id, task.id)


def _as(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _reads(side: Side) -> list[str]:
    return [
        f"/workspaces/{side.workspace_id}/datasets",
        f"/datasets/{side.dataset_id}",
        f"/datasets/{side.dataset_id}/images",
        f"/images/{side.image_id}",
        f"/images/{side.image_id}/thumbnail",
        f"/images/{side.image_id}/original",
        f"/images/{side.image_id}/captions",
        f"/exports/{side.export_id}",
        f"/exports/{side.export_id}/download",
        f"/tasks/{side.task_id}",
        f"/datasets/{side.dataset_id}/tasks",
    ]


def test_a_user_cannot_read_another_users_workspace(auth_client: TestClient, ctx: Context) -> None:
    alice = _side(ctx, "alice", "alice-studio")
    bob = _side(ctx, "bob", "bob-studio")

    listed = auth_client.get(f"{API}/workspaces", headers=_as(alice.token)).json()
    assert [w["id"] for w in listed["data"]] == [alice.workspace_id]
    for path in _reads(alice):
        assert auth_client.get(API + path, headers=_as(alice.token)).status_code == 200, path
    for path in _reads(bob):
        answer = auth_client.get(API + path, headers=_as(alice.token))
        assert answer.status_code == 404, path  # as if it did not exist
        assert "bob" not in answer.text
    assert auth_client.delete(f"{API}/datasets/{bob.dataset_id}", headers=_as(alice.token)).status_code == 404
    # The admin token still sees everything.
    admin = auth_client.get(f"{API}/workspaces", headers=_as(ADMIN_TOKEN)).json()
    assert {alice.workspace_id, bob.workspace_id} <= {w["id"] for w in admin["data"]}
    assert (
        auth_client.get(f"{API}/images/{bob.image_id}/original", headers=_as(ADMIN_TOKEN)).status_code == 200
    )


def test_a_viewer_reads_but_cannot_change(auth_client: TestClient, ctx: Context) -> None:
    viewer = _side(ctx, "vera", "shared", role="viewer")
    headers = _as(viewer.token)

    assert auth_client.get(f"{API}/images/{viewer.image_id}", headers=headers).status_code == 200
    review = auth_client.patch(f"{API}/images/{viewer.image_id}", json={"status": "kept"}, headers=headers)
    assert review.status_code == 403 and "viewer" in review.json()["error"]["message"]
    caption = auth_client.put(
        f"{API}/images/{viewer.image_id}/captions/active", json={"text": "ohwx"}, headers=headers
    )
    assert caption.status_code == 403
    run = auth_client.post(f"{API}/datasets/{viewer.dataset_id}/runs/curate", json={}, headers=headers)
    assert run.status_code == 403
    assert auth_client.delete(f"{API}/datasets/{viewer.dataset_id}", headers=headers).status_code == 403

    with ctx.catalog.session() as session:
        users.grant(
            session,
            session.get(users.Workspace, viewer.workspace_id),
            users.get_user(session, "vera"),
            "editor",
        )
    review = auth_client.patch(f"{API}/images/{viewer.image_id}", json={"status": "kept"}, headers=headers)
    assert review.status_code == 200
    assert auth_client.delete(f"{API}/datasets/{viewer.dataset_id}", headers=headers).status_code == 403


def test_a_user_who_creates_a_workspace_owns_it(auth_client: TestClient, ctx: Context) -> None:
    with ctx.catalog.session() as session:
        _, token = users.add_user(session, "carol")
    created = auth_client.post(f"{API}/workspaces", json={"name": "carol-space"}, headers=_as(token))
    assert created.status_code == 201
    listed = auth_client.get(f"{API}/workspaces", headers=_as(token)).json()
    assert [w["name"] for w in listed["data"]] == ["carol-space"]
    made = auth_client.post(
        f"{API}/workspaces/{created.json()['id']}/datasets", json={"name": "d"}, headers=_as(token)
    )
    assert made.status_code == 201


def test_wrong_or_missing_tokens_are_refused(auth_client: TestClient) -> None:
    assert auth_client.get(f"{API}/workspaces").status_code == 401
    assert auth_client.get(f"{API}/workspaces", headers=_as("lfu_not-a-real-token")).status_code == 401
    assert auth_client.get(f"{API}/health").status_code == 200


def test_cli_made_user_token_works_and_only_its_hash_is_stored(
    auth_client: TestClient, ctx: Context, stack_env: dict[str, str]
) -> None:
    added = run_cli("users", "add", "dave", env=stack_env)
    assert added.returncode == 0, added.stderr
    token = added.stdout.strip()
    granted = run_cli("workspaces", "grant", "dave-space", "dave", "--role", "viewer", env=stack_env)
    assert granted.returncode == 0, granted.stderr

    listed = auth_client.get(f"{API}/workspaces", headers=_as(token)).json()
    assert [w["name"] for w in listed["data"]] == ["dave-space"]
    with ctx.catalog.session() as session:
        stored = users.get_user(session, "dave").token_hash
    assert token not in stored and stored == users.hash_token(token)
