"""Workspaces and datasets: create, list, read, update, delete, statistics."""

from __future__ import annotations

from fastapi.testclient import TestClient

from loraforge.catalog.models import Image
from loraforge.stages.context import Context
from tests.api.factories import make_bucket, make_caption, make_dataset, make_image, make_workspace

API = "/api/v1"


def test_dataset_crud(client: TestClient) -> None:
    workspace = client.post(f"{API}/workspaces", json={"name": "studio"})
    assert workspace.status_code == 201
    workspace_id = workspace.json()["id"]
    assert client.post(f"{API}/workspaces", json={"name": "studio"}).status_code == 409

    created = client.post(
        f"{API}/workspaces/{workspace_id}/datasets",
        json={"name": "alice", "trigger_word": "ohwx", "class_word": "woman", "settings": {"seed": 1}},
    )
    assert created.status_code == 201
    dataset = created.json()
    assert (dataset["name"], dataset["target_model"], dataset["workspace_id"]) == (
        "alice",
        "sdxl",
        workspace_id,
    )
    duplicate = client.post(f"{API}/workspaces/{workspace_id}/datasets", json={"name": "alice"})
    assert duplicate.status_code == 409 and duplicate.json()["error"]["code"] == "conflict"

    listed = client.get(f"{API}/workspaces/{workspace_id}/datasets").json()
    assert listed["count"] == 1 and listed["data"][0]["id"] == dataset["id"]

    updated = client.patch(
        f"{API}/datasets/{dataset['id']}",
        json={"trigger_word": "sks", "target_model": "flux", "settings": {"caption": "blip"}},
    )
    assert updated.status_code == 200
    body = updated.json()
    assert (body["trigger_word"], body["class_word"], body["target_model"]) == ("sks", "woman", "flux")
    assert body["settings"] == {"seed": 1, "caption": "blip"}  # merged, not replaced
    assert client.get(f"{API}/datasets/{dataset['id']}").json()["trigger_word"] == "sks"

    assert client.delete(f"{API}/datasets/{dataset['id']}").status_code == 204
    assert client.get(f"{API}/datasets/{dataset['id']}").status_code == 404
    assert client.get(f"{API}/workspaces/{workspace_id}/datasets").json()["count"] == 0


def test_deleting_a_dataset_removes_its_images(client: TestClient, ctx: Context) -> None:
    with ctx.catalog.session() as session:
        dataset = make_dataset(session, make_workspace(session))
        make_image(session, ctx.store, dataset, seed=1)
    assert client.delete(f"{API}/datasets/{dataset.id}").status_code == 204
    with ctx.catalog.session() as session:
        assert session.query(Image).count() == 0


def test_stats_count_statuses_buckets_and_captions(client: TestClient, ctx: Context) -> None:
    with ctx.catalog.session() as session:
        dataset = make_dataset(session, make_workspace(session))
        kept = [make_image(session, ctx.store, dataset, seed=s, status="kept") for s in (1, 2)]
        make_image(session, ctx.store, dataset, seed=3, status="rejected")
        make_bucket(session, kept[0], width=1024, height=768)
        make_bucket(session, kept[1], width=1024, height=768)
        make_caption(session, kept[0], "ohwx woman smiling")
    stats = client.get(f"{API}/datasets/{dataset.id}/stats").json()
    assert stats == {
        "total": 3,
        "by_status": {"kept": 2, "rejected": 1},
        "by_bucket": {"1024x768": 2},
        "captioned": 1,
    }
