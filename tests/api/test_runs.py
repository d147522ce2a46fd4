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
        if task["status"] in ("COMPLETED", "FAILED", "CANCELLED"):
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


def test_stage_run_ingests_server_side_sources(client: TestClient, ctx: Context, tmp_path: Path) -> None:
    with ctx.catalog.session() as session:
        dataset = make_dataset(session, make_workspace(session), name="coffee")
    folder = tmp_path / "photos"
    folder.mkdir()
    shutil.copy(real_photo_paths()["coffee"], folder / "coffee.png")
    accepted = client.post(
        f"{API}/datasets/{dataset.id}/runs/ingest", json={"params": {"sources": [str(folder)]}}
    )
    assert accepted.status_code == 202
    task = wait_for_task(client, accepted.json()["task_id"])
    assert task["status"] == "COMPLETED" and task["kind"] == "ingest"
    assert task["params"] == {"sources": [str(folder)]}
    listed = client.get(f"{API}/datasets/{dataset.id}/images").json()
    assert [image["original_filename"] for image in listed["data"]] == ["coffee.png"]
    tasks = client.get(f"{API}/datasets/{dataset.id}/tasks").json()
    assert [t["id"] for t in tasks["data"]] == [task["id"]]


def test_unreadable_sources_are_reported_in_the_task_result(
    client: TestClient, ctx: Context, tmp_path: Path
) -> None:
    with ctx.catalog.session() as session:
        dataset = make_dataset(session, make_workspace(session))
    missing = str(tmp_path / "not-there")
    accepted = client.post(
        f"{API}/datasets/{dataset.id}/runs/ingest", json={"params": {"sources": [missing]}}
    )
    task = wait_for_task(client, accepted.json()["task_id"])
    assert task["status"] == "COMPLETED"
    assert task["result"]["added"] == 0 and task["result"]["failed"] == 1
    assert client.get(f"{API}/datasets/{dataset.id}/images").json()["count"] == 0
