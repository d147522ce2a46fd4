"""Runs through the API: uploads and stage runs start the real ingest flow (Prefect + Ray) in a thread."""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from loraforge.stages.context import Context
from tests.api.factories import make_dataset, make_workspace
from tests.support.images import corrupt_jpeg, jpeg_bytes, real_photo_paths, zip_bytes

pytestmark = pytest.mark.usefixtures("prefect_harness", "ray_cluster")
API = "/api/v1"


def wait_for_task(client: TestClient, task_id: str, *, deadline_s: float = 300) -> dict[str, Any]:
    """Poll the task as the dashboard does, until it finishes (the deadline only stops a hung test)."""
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        task = client.get(f"{API}/tasks/{task_id}").json()
        if task["status"] in ("COMPLETED", "FAILED", "CANCELLED", "CRASHED"):
            return task
        time.sleep(0.5)
    raise AssertionError(f"task {task_id} still {task['status']}")


def test_upload_runs_ingest_and_images_appear(client: TestClient, ctx: Context) -> None:
    with ctx.catalog.session() as session:
        dataset = make_dataset(session, make_workspace(session))
    photos = real_photo_paths()
    files = [
        ("files", ("astronaut.png", photos["astronaut"].read_bytes(), "image/png")),
        ("files", ("garden.jpg", jpeg_bytes(seed=21), "image/jpeg")),
        ("files", ("../../broken.jpg", corrupt_jpeg(), "image/jpeg")),
        ("files", ("more.zip", zip_bytes({"inzip/cat.jpg": jpeg_bytes(seed=22)}), "application/zip")),
    ]
    accepted = client.post(f"{API}/datasets/{dataset.id}/images", files=files)
    assert accepted.status_code == 202
    assert accepted.json()["kind"] == "ingest"
    task = wait_for_task(client, accepted.json()["task_id"])
    assert task["status"] == "COMPLETED", task["error"]
    assert (task["done"], task["total"], task["progress"]) == (4, 4, 1.0)
    assert task["result"]["added"] == 3 and task["result"]["failed"] == 1
    images = client.get(f"{API}/datasets/{dataset.id}/images").json()
    assert sorted(image["original_filename"] for image in images["data"]) == [
        "astronaut.png",
        "garden.jpg",
        "inzip/cat.jpg",
    ]
    astronaut = next(i for i in images["data"] if i["original_filename"] == "astronaut.png")
    original = client.get(f"{API}/images/{astronaut['id']}/original")
    assert original.content == photos["astronaut"].read_bytes()
    assert client.get(f"{API}/images/{astronaut['id']}/thumbnail").content[:4] == b"RIFF"


def allow_imports_from(monkeypatch: pytest.MonkeyPatch, *roots: Path) -> None:
    from loraforge.config import get_settings

    monkeypatch.setenv("LORAFORGE_IMPORT_ROOTS", ",".join(str(root) for root in roots))
    get_settings.cache_clear()


def test_stage_run_ingests_from_an_import_root(
    client: TestClient, ctx: Context, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with ctx.catalog.session() as session:
        dataset = make_dataset(session, make_workspace(session), name="coffee")
    folder = tmp_path / "imports" / "photos"
    folder.mkdir(parents=True)
    shutil.copy(real_photo_paths()["coffee"], folder / "coffee.png")
    allow_imports_from(monkeypatch, tmp_path / "imports")
    accepted = client.post(f"{API}/datasets/{dataset.id}/runs/ingest", json={"sources": ["photos"]})
    assert accepted.status_code == 202, accepted.text
    task = wait_for_task(client, accepted.json()["task_id"])
    assert task["status"] == "COMPLETED" and task["kind"] == "ingest"
    assert task["params"]["sources"] == [str(folder.resolve())]
    listed = client.get(f"{API}/datasets/{dataset.id}/images").json()
    assert [image["original_filename"] for image in listed["data"]] == ["coffee.png"]
    tasks = client.get(f"{API}/datasets/{dataset.id}/tasks").json()
    assert [t["id"] for t in tasks["data"]] == [task["id"]]


def test_server_paths_outside_the_import_roots_are_forbidden(
    client: TestClient, ctx: Context, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with ctx.catalog.session() as session:
        dataset = make_dataset(session, make_workspace(session))
    secret = tmp_path / "secret.txt"
    secret.write_text("root:x:0:0\n")
    url = f"{API}/datasets/{dataset.id}/runs/ingest"
    # No import roots configured: no server path at all.
    refused = client.post(url, json={"sources": [str(secret)]})
    assert refused.status_code == 403 and "disabled" in refused.json()["error"]["message"]
    allow_imports_from(monkeypatch, tmp_path / "imports")
    (tmp_path / "imports").mkdir()
    (tmp_path / "imports" / "escape").symlink_to(tmp_path)
    for source in (str(secret), "../secret.txt", "escape/secret.txt", "/etc/passwd"):
        refused = client.post(url, json={"sources": [source]})
        assert refused.status_code == 403, (source, refused.text)
    assert client.get(f"{API}/datasets/{dataset.id}/tasks").json()["count"] == 0


def test_run_bodies_are_typed_and_refuse_what_a_client_may_not_choose(
    client: TestClient, ctx: Context
) -> None:
    with ctx.catalog.session() as session:
        dataset = make_dataset(session, make_workspace(session))
    runs = f"{API}/datasets/{dataset.id}/runs"
    for stage, body in (
        ("ingest", None),
        ("ingest", {}),
        ("ingest", {"params": {"sources": ["x"]}}),
        ("caption", {"captioner": "openai", "endpoint": "http://attacker.example/v1"}),
        ("caption", {"api_key": "x"}),
        ("export", {"format": "kohya", "out": "/tmp/anywhere"}),
        ("export", {"format": "kohy"}),
        ("bucket", {"max_upscale": 0.5}),
        ("curate", {"thresholds": {"nonsense": 0.5}}),
    ):
        answer = client.post(f"{runs}/{stage}", json=body)
        assert answer.status_code == 422, (stage, body, answer.text)
    for stage, body in (
        ("caption", {"captioner": "blip", "model": "/etc"}),
        ("caption", {"captioner": "blip", "model": "../../models/x"}),
        ("curate", {"clip_model": "ViT-B-32:/root/weights.pt"}),
        ("bucket", {"face_detector": "retinaface", "face_weights": "/etc/shadow"}),
    ):
        answer = client.post(f"{runs}/{stage}", json=body)
        assert answer.status_code == 403, (stage, body, answer.text)
    schema = client.get(f"{API}/openapi.json").json()
    body_schema = schema["paths"]["/api/v1/datasets/{dataset_id}/runs/caption"]["post"]["requestBody"]
    assert body_schema["content"]["application/json"]["schema"]["$ref"].endswith("/CaptionOptions")
    caption_fields = schema["components"]["schemas"]["CaptionOptions"]["properties"]
    assert "endpoint" not in caption_fields and "api_key" not in caption_fields
    assert client.get(f"{API}/datasets/{dataset.id}/tasks").json()["count"] == 0


def test_a_second_run_on_a_busy_dataset_is_refused_and_cancel_frees_it(
    client: TestClient, ctx: Context
) -> None:
    from loraforge import tasks

    with ctx.catalog.session() as session:
        dataset = make_dataset(session, make_workspace(session))
        running = tasks.create_task(session, kind="caption", dataset_id=dataset.id)
        tasks.start_task(session, running.id)
    busy = client.post(f"{API}/datasets/{dataset.id}/runs/curate", json={})
    assert busy.status_code == 409 and running.id in busy.json()["error"]["message"]
    cancelled = client.post(f"{API}/tasks/{running.id}/cancel")
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "CANCELLED"
    assert client.post(f"{API}/tasks/{running.id}/cancel").status_code == 409
    accepted = client.post(f"{API}/datasets/{dataset.id}/runs/curate", json={})
    assert accepted.status_code == 202
    assert wait_for_task(client, accepted.json()["task_id"])["status"] == "COMPLETED"


def test_unreadable_sources_are_reported_in_the_task_result(
    client: TestClient, ctx: Context, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with ctx.catalog.session() as session:
        dataset = make_dataset(session, make_workspace(session))
    allow_imports_from(monkeypatch, tmp_path)
    missing = str(tmp_path / "not-there")
    accepted = client.post(f"{API}/datasets/{dataset.id}/runs/ingest", json={"sources": [missing]})
    task = wait_for_task(client, accepted.json()["task_id"])
    assert task["status"] == "COMPLETED"
    assert task["result"]["added"] == 0 and task["result"]["failed"] == 1
    assert client.get(f"{API}/datasets/{dataset.id}/images").json()["count"] == 0
