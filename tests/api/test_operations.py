"""The API's review and caption edits are the CLI's rules (loraforge.stages.operations), not copies."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from loraforge.stages.context import Context
from loraforge.stages.curate import MANUAL_REASONS
from tests.api.factories import make_caption, make_dataset, make_image, make_workspace

API = "/api/v1"


def test_review_and_caption_edit_follow_the_shared_rules(client: TestClient, ctx: Context) -> None:
    with ctx.catalog.session() as session:
        dataset = make_dataset(session, make_workspace(session))
        image = make_image(session, ctx.store, dataset, seed=1)
        make_caption(session, image, "a woman in a red coat")
    kept = client.patch(f"{API}/images/{image.id}", json={"status": "kept"}).json()
    assert (kept["status"], kept["status_reason"], kept["status_manual"]) == (
        "kept",
        MANUAL_REASONS["kept"],
        True,
    )
    handed_back = client.patch(f"{API}/images/{image.id}", json={"status": "auto"}).json()
    assert handed_back["status_manual"] is False  # the next curate decides it again, as `review --auto` does

    blank = client.put(f"{API}/images/{image.id}/captions/active", json={"text": "   \n "})
    assert blank.status_code == 422 and "text" in blank.json()["error"]["message"]  # blank: refused
    edited = client.put(
        f"{API}/images/{image.id}/captions/active", json={"text": "  ohwx woman,\n smiling  "}
    )
    assert edited.json()["text"] == "ohwx woman, smiling" and edited.json()["edited"] is True
    captions = client.get(f"{API}/images/{image.id}/captions").json()["data"]
    assert [c["is_active"] for c in captions] == [False, True]


def test_deleting_a_busy_dataset_cancels_its_run(client: TestClient, ctx: Context) -> None:
    from loraforge import tasks

    with ctx.catalog.session() as session:
        dataset = make_dataset(session, make_workspace(session))
        make_image(session, ctx.store, dataset, seed=2)
        running = tasks.create_task(session, kind="bucket", dataset_id=dataset.id)
        tasks.start_task(session, running.id)
    assert client.delete(f"{API}/datasets/{dataset.id}").status_code == 204
    assert client.get(f"{API}/datasets/{dataset.id}").status_code == 404
    # The run's next heartbeat reads its missing row as a cancellation, and it stops.
    with ctx.catalog.session() as session:
        assert tasks.heartbeat(session, running.id) == tasks.TaskStatus.CANCELLED


def test_deleting_a_dataset_mid_run_stops_the_run_and_the_integrity_check_collects_what_it_wrote(
    client: TestClient, ctx: Context, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import threading
    import time

    from loraforge import maintenance
    from tests.api.test_runs import allow_imports_from
    from tests.support.images import jpeg_bytes

    folder = tmp_path / "imports" / "many"
    folder.mkdir(parents=True)
    for seed in range(40):
        (folder / f"shot{seed:02d}.jpg").write_bytes(jpeg_bytes(640, 480, seed=seed))
    allow_imports_from(monkeypatch, tmp_path / "imports")
    with ctx.catalog.session() as session:
        dataset = make_dataset(session, make_workspace(session))
    started = client.post(
        f"{API}/datasets/{dataset.id}/runs/ingest", json={"sources": ["many"], "shard_size": 5}
    )
    assert started.status_code == 202

    assert client.delete(f"{API}/datasets/{dataset.id}").status_code == 204

    deadline = time.monotonic() + 120
    while any(t.name.startswith("loraforge-ingest") for t in threading.enumerate()):
        assert time.monotonic() < deadline, "the run did not stop after its dataset was deleted"
        time.sleep(0.2)
    assert client.get(f"{API}/datasets/{dataset.id}").status_code == 404
    with ctx.catalog.session() as session:
        report = maintenance.check_integrity(session, ctx.store, sample=0, grace_s=0.0, dry_run=False)
    assert report.ok
    assert list(ctx.store.list(f"uploads/{dataset.id}/")) == []
    assert list(ctx.store.list("originals/")) == []  # nothing the deleted dataset's run stored is left
