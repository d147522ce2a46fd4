"""The search routes through the real app: preview candidates with licences, add picked ids (202 + task),
never a URL from the client, and workspace roles as on every other route."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from loraforge import users
from loraforge.catalog.models import Image, ImageMetadata
from loraforge.config import get_settings
from loraforge.stages.context import Context, open_context
from tests.api.factories import make_dataset, make_workspace
from tests.support.fake_providers import FakeProvider

API = "/api/v1"
ADMIN = {"Authorization": "Bearer admin-token"}
pytestmark = pytest.mark.usefixtures("prefect_harness")


@pytest.fixture
def ctx(search_env: dict[str, str]) -> Context:
    context = open_context()
    context.catalog.ensure_schema()
    return context


@pytest.fixture
def client(ctx: Context, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    from services.api.main import create_app

    monkeypatch.setenv("LORAFORGE_API_TOKEN", "admin-token")
    get_settings.cache_clear()
    with TestClient(create_app()) as test_client:
        yield test_client


def dataset_id(ctx: Context, name: str = "hopper") -> str:
    with ctx.catalog.session() as session:
        return make_dataset(session, make_workspace(session, f"ws-{name}"), name=name).id


def wait_for(client: TestClient, task_id: str) -> dict[str, Any]:
    for _ in range(300):
        task = client.get(f"{API}/tasks/{task_id}", headers=ADMIN).json()
        if task["status"] not in ("PENDING", "RUNNING"):
            return task  # type: ignore[no-any-return]
        time.sleep(0.2)
    raise AssertionError(f"task {task_id} did not end: {task}")


def test_providers_list_says_which_are_configured(client: TestClient) -> None:
    answer = client.get(f"{API}/search/providers", headers=ADMIN)
    assert answer.status_code == 200
    by_name = {p["name"]: p for p in answer.json()}
    assert set(by_name) == {"openverse", "wikimedia", "danbooru", "gelbooru", "safebooru", "brave"}
    assert by_name["brave"]["configured"] is True and by_name["brave"]["needs_key"] is True
    assert by_name["safebooru"]["gives_licence"] is False


def test_preview_then_add_picked_candidates(
    client: TestClient, ctx: Context, fakes: dict[str, FakeProvider]
) -> None:
    dataset = dataset_id(ctx)
    body = {
        "query": "grace hopper",
        "providers": ["openverse", "wikimedia"],
        "licences": ["cc0", "cc-by"],
        "limit": 5,
    }
    answer = client.post(f"{API}/datasets/{dataset}/searches", json=body, headers=ADMIN)
    assert answer.status_code == 201, answer.text
    search = answer.json()
    candidates = search["candidates"]
    assert len(candidates) == 10
    assert {c["licence"] for c in candidates} <= {"cc0", "cc-by"}
    assert all(c["thumbnail_url"] and c["provider"] in ("openverse", "wikimedia") for c in candidates)
    assert "file_url" not in candidates[0]  # the server keeps the picture's address; clients pick ids
    assert not fakes["openverse"].file_requests()  # a preview downloads nothing

    picked = [c["id"] for c in candidates[:3]]
    added = client.post(
        f"{API}/datasets/{dataset}/searches/{search['id']}/add", json={"candidate_ids": picked}, headers=ADMIN
    )
    assert added.status_code == 202, added.text
    task = wait_for(client, added.json()["task_id"])
    assert task["status"] == "COMPLETED", task
    with ctx.catalog.session() as session:
        images = session.scalars(select(Image).where(Image.dataset_id == dataset)).all()
        provenance = session.scalars(select(ImageMetadata).where(ImageMetadata.key == "provenance")).all()
    assert len(images) == 3 and len(provenance) == 3
    assert {p.value["licence"] for p in provenance} <= {"cc0", "cc-by"}

    # The same query again previews the next candidates, never the ones already shown.
    again = client.post(f"{API}/datasets/{dataset}/searches", json=body, headers=ADMIN).json()
    assert again["id"] == search["id"]
    shown = {c["id"] for c in candidates}
    assert {c["id"] for c in again["candidates"]} & set(picked) == set()
    assert len(shown | {c["id"] for c in again["candidates"]}) > len(shown)


def test_ids_that_are_not_candidates_of_the_search_are_refused(client: TestClient, ctx: Context) -> None:
    dataset, other = dataset_id(ctx, "one"), dataset_id(ctx, "two")
    body = {"query": "q", "providers": ["danbooru"], "rating": None, "limit": 2}
    search = client.post(f"{API}/datasets/{dataset}/searches", json=body, headers=ADMIN).json()
    add = f"{API}/datasets/{dataset}/searches/{search['id']}/add"
    unknown = client.post(add, json={"candidate_ids": ["0" * 32]}, headers=ADMIN)
    assert unknown.status_code == 404 and "0" * 32 in unknown.json()["error"]["message"]
    assert (
        client.post(add, json={"candidate_ids": ["https://evil.example/x.jpg"]}, headers=ADMIN).status_code
        == 422
    )
    assert client.post(add, json={"urls": ["https://evil.example/x.jpg"]}, headers=ADMIN).status_code == 422
    elsewhere = f"{API}/datasets/{other}/searches/{search['id']}/add"
    ids = [search["candidates"][0]["id"]]
    assert client.post(elsewhere, json={"candidate_ids": ids}, headers=ADMIN).status_code == 404


def test_bad_input_is_refused_and_a_failing_provider_does_not_stop_the_others(
    client: TestClient, ctx: Context, fakes: dict[str, FakeProvider]
) -> None:
    dataset = dataset_id(ctx)
    url = f"{API}/datasets/{dataset}/searches"
    assert client.post(url, json={"query": "q", "providers": ["nosuch"]}, headers=ADMIN).status_code == 422
    assert (
        client.post(
            url, json={"query": "q", "providers": ["openverse"], "licences": ["mit"]}, headers=ADMIN
        ).status_code
        == 422
    )
    assert client.post(url, json={"query": " ", "providers": ["openverse"]}, headers=ADMIN).status_code == 422
    fakes["wikimedia"].delay_s = 30
    get_settings.cache_clear()
    answer = client.post(
        url,
        json={
            "query": "q",
            "providers": ["safebooru", "wikimedia", "openverse"],
            "licences": ["cc0"],
            "limit": 2,
        },
        headers=ADMIN,
    )
    fakes["wikimedia"].delay_s = 0
    assert answer.status_code == 201, answer.text
    lines = {line["provider"]: line for line in answer.json()["providers"]}
    assert "gives no licence" in lines["safebooru"]["error"]
    assert "did not answer" in lines["wikimedia"]["error"] or "cannot reach" in lines["wikimedia"]["error"]
    assert lines["openverse"]["error"] is None and lines["openverse"]["new"] == 2


def test_roles_apply(client: TestClient, ctx: Context) -> None:
    with ctx.catalog.session() as session:
        workspace = make_workspace(session, "shared")
        dataset = make_dataset(session, workspace, name="shared-data").id
        viewer, viewer_token = users.add_user(session, "vera")
        users.grant(session, workspace, viewer, "viewer")
        _stranger, stranger_token = users.add_user(session, "sam")
    body = {"query": "q", "providers": ["openverse"], "limit": 1}
    as_viewer = client.post(
        f"{API}/datasets/{dataset}/searches", json=body, headers={"Authorization": f"Bearer {viewer_token}"}
    )
    assert as_viewer.status_code == 403
    as_stranger = client.post(
        f"{API}/datasets/{dataset}/searches", json=body, headers={"Authorization": f"Bearer {stranger_token}"}
    )
    assert as_stranger.status_code == 404
    assert client.get(f"{API}/search/providers").status_code == 401


def test_saved_searches_and_the_sync_opt_in(client: TestClient, ctx: Context) -> None:
    dataset = dataset_id(ctx)
    body = {"query": "1girl", "providers": ["gelbooru"], "rating": None, "limit": 3}
    search = client.post(f"{API}/datasets/{dataset}/searches", json=body, headers=ADMIN).json()
    listed = client.get(f"{API}/datasets/{dataset}/searches", headers=ADMIN).json()
    assert listed["sync"] is False
    assert [(s["id"], s["query"], s["candidates"]) for s in listed["data"]] == [
        (search["id"], "1girl", {"found": 3})
    ]
    assert listed["data"][0]["params"]["providers"] == ["gelbooru"]
    answer = client.put(f"{API}/datasets/{dataset}/searches/sync", json={"enabled": True}, headers=ADMIN)
    assert answer.status_code == 200 and answer.json() == {"enabled": True}
    assert client.get(f"{API}/datasets/{dataset}/searches", headers=ADMIN).json()["sync"] is True


@pytest.fixture
def search_deployment(ctx: Context, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """The search-add deployment `loraforge worker` serves, registered without a worker, and the API
    pointed at the harness's Prefect server, as LORAFORGE_PREFECT_API_URL does in deployment."""
    from prefect import get_client
    from prefect.settings import PREFECT_API_URL

    from flows.deployments import DEPLOYMENT_NAME
    from flows.search import search_add_flow

    url = str(PREFECT_API_URL.value())
    monkeypatch.setenv("PREFECT_API_URL", url)
    monkeypatch.setenv("LORAFORGE_PREFECT_API_URL", url)
    get_settings.cache_clear()
    deployment_id = search_add_flow.to_deployment(name=DEPLOYMENT_NAME).apply()
    yield deployment_id
    with get_client(sync_client=True) as prefect:
        prefect.delete_deployment(deployment_id)


def test_adding_goes_to_the_worker_deployment_not_the_api_process(
    client: TestClient, ctx: Context, fakes: dict[str, FakeProvider], search_deployment: Any
) -> None:
    from prefect import get_client

    from flows.search import search_add_flow

    dataset = dataset_id(ctx)
    body = {"query": "ada lovelace", "providers": ["openverse"], "licences": ["cc0", "cc-by"], "limit": 4}
    search = client.post(f"{API}/datasets/{dataset}/searches", json=body, headers=ADMIN).json()
    picked = [c["id"] for c in search["candidates"][:2]]
    added = client.post(
        f"{API}/datasets/{dataset}/searches/{search['id']}/add", json={"candidate_ids": picked}, headers=ADMIN
    )
    assert added.status_code == 202, added.text
    task = client.get(f"{API}/tasks/{added.json()['task_id']}", headers=ADMIN).json()
    assert task["kind"] == "search" and task["status"] == "PENDING" and task["orchestrator_run_id"]
    time.sleep(1)
    assert not fakes["openverse"].file_requests()  # nothing downloaded by the API process
    with get_client(sync_client=True) as prefect:
        run = prefect.read_flow_run(task["orchestrator_run_id"])
    assert run.deployment_id == search_deployment
    assert run.parameters["options"] == {"search_id": search["id"], "candidate_ids": picked}

    # What the worker does with that run: the flow, given the run's JSON parameters.
    result = search_add_flow(**run.parameters)
    assert result["task_id"] == task["id"] and result["ingest"]["added"] == 2
    done = client.get(f"{API}/tasks/{task['id']}", headers=ADMIN).json()
    assert done["status"] == "COMPLETED" and done["done"] == 2
    with ctx.catalog.session() as session:
        provenance = session.scalars(select(ImageMetadata).where(ImageMetadata.key == "provenance")).all()
    assert len(provenance) == 2
