"""Health, the one error format (404, 422, 409, unknown routes) and bearer-token auth."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from loraforge.config import get_settings
from loraforge.stages.context import Context
from tests.api.factories import make_dataset, make_workspace

API = "/api/v1"


def test_health_reports_catalog_storage_and_version(client: TestClient) -> None:
    response = client.get(f"{API}/health")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok" and body["catalog"] is True and body["storage"] is True
    assert body["version"] and body["version"] != "unknown"


def test_missing_rows_answer_404_in_the_error_format(client: TestClient) -> None:
    for path in ("/datasets/nope", "/images/nope", "/tasks/nope", "/exports/nope", "/trainings/nope"):
        response = client.get(f"{API}{path}")
        assert response.status_code == 404, path
        error = response.json()["error"]
        assert error["code"] == "not_found" and "nope" in error["message"]


def test_unknown_route_uses_the_error_format(client: TestClient) -> None:
    response = client.get(f"{API}/no-such-thing")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_validation_errors_are_422_with_details(client: TestClient, ctx: Context) -> None:
    with ctx.catalog.session() as session:
        workspace_id = make_workspace(session).id
    response = client.post(
        f"{API}/workspaces/{workspace_id}/datasets", json={"name": "", "target_model": "sd3"}
    )
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "invalid_input"
    assert {tuple(d["loc"][-1:]) for d in error["details"]} == {("name",), ("target_model",)}


def test_unknown_stage_is_404_and_unknown_run_field_is_422(client: TestClient, ctx: Context) -> None:
    with ctx.catalog.session() as session:
        dataset_id = make_dataset(session, make_workspace(session)).id
    response = client.post(f"{API}/datasets/{dataset_id}/runs/paint", json={})
    assert response.status_code == 404
    response = client.post(
        f"{API}/datasets/{dataset_id}/runs/ingest", json={"sources": ["x"], "colour": "red"}
    )
    assert response.status_code == 422
    assert "colour" in response.text
    response = client.post(f"{API}/datasets/{dataset_id}/runs/ingest", json={})
    assert response.status_code == 422
    assert "source" in response.text
    tasks = client.get(f"{API}/datasets/{dataset_id}/tasks").json()
    assert tasks["count"] == 0  # a refused run leaves no task row behind


@pytest.fixture
def token(stack_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("LORAFORGE_API_TOKEN", "s3cret-token")
    get_settings.cache_clear()
    return "s3cret-token"


def test_token_is_required_everywhere_but_health(client: TestClient, token: str) -> None:
    assert client.get(f"{API}/health").status_code == 200
    missing = client.get(f"{API}/workspaces")
    assert missing.status_code == 401
    assert missing.json()["error"]["code"] == "unauthorized"
    assert missing.headers["www-authenticate"] == "Bearer"
    wrong = client.get(f"{API}/workspaces", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401
    right = client.get(f"{API}/workspaces", headers={"Authorization": f"Bearer {token}"})
    assert right.status_code == 200 and right.json() == {"data": [], "count": 0}
