"""The API's review and caption edits are the CLI's rules (loraforge.stages.operations), not copies."""

from __future__ import annotations

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


def test_delete_refuses_a_busy_dataset(client: TestClient, ctx: Context) -> None:
    from loraforge import tasks

    with ctx.catalog.session() as session:
        dataset = make_dataset(session, make_workspace(session))
        make_image(session, ctx.store, dataset, seed=2)
        running = tasks.create_task(session, kind="bucket", dataset_id=dataset.id)
        tasks.start_task(session, running.id)
    assert client.delete(f"{API}/datasets/{dataset.id}").status_code == 409
    assert client.post(f"{API}/tasks/{running.id}/cancel").status_code == 200
    assert client.delete(f"{API}/datasets/{dataset.id}").status_code == 204
    assert client.get(f"{API}/datasets/{dataset.id}").status_code == 404
