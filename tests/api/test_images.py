"""Images: paging and filters, detail, thumbnail and original bytes, manual review, caption edits."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from loraforge.config import get_settings
from loraforge.stages.context import Context
from tests.api.factories import (
    make_bucket,
    make_caption,
    make_dataset,
    make_export,
    make_image,
    make_metadata,
    make_task,
    make_workspace,
)

API = "/api/v1"


def test_list_images_filters_by_status_and_pages(client: TestClient, ctx: Context) -> None:
    with ctx.catalog.session() as session:
        dataset = make_dataset(session, make_workspace(session))
        for seed in range(5):
            make_image(session, ctx.store, dataset, seed=seed, status="kept" if seed % 2 else "pending")
    page = client.get(f"{API}/datasets/{dataset.id}/images", params={"limit": 2, "offset": 1}).json()
    assert page["count"] == 5
    assert [image["original_filename"] for image in page["data"]] == ["photo-001.jpg", "photo-002.jpg"]
    kept = client.get(f"{API}/datasets/{dataset.id}/images", params={"status": "kept"}).json()
    assert kept["count"] == 2 and {i["status"] for i in kept["data"]} == {"kept"}
    both = client.get(
        f"{API}/datasets/{dataset.id}/images", params=[("status", "kept"), ("status", "pending")]
    )
    assert both.json()["count"] == 5
    assert client.get(f"{API}/datasets/{dataset.id}/images", params={"status": "nice"}).status_code == 422
    assert "thumbnail_key" not in page["data"][0] and page["data"][0]["has_thumbnail"] is True


def test_thumbnail_and_original_bytes_come_from_the_store(client: TestClient, ctx: Context) -> None:
    with ctx.catalog.session() as session:
        dataset = make_dataset(session, make_workspace(session))
        image = make_image(session, ctx.store, dataset, seed=7)
        bare = make_image(session, ctx.store, dataset, seed=8, thumbnail=False)
    thumbnail = client.get(f"{API}/images/{image.id}/thumbnail")
    assert thumbnail.status_code == 200 and thumbnail.headers["content-type"] == "image/webp"
    assert thumbnail.content == ctx.store.get(image.thumbnail_key or "")
    assert thumbnail.content[:4] == b"RIFF"
    original = client.get(f"{API}/images/{image.id}/original")
    assert original.headers["content-type"] == "image/jpeg"
    assert original.content == ctx.store.get(image.object_key)
    redirect = client.get(
        f"{API}/images/{image.id}/original", params={"redirect": True}, follow_redirects=False
    )
    assert redirect.status_code == 307 and image.sha256 in redirect.headers["location"]
    assert client.get(f"{API}/images/{bare.id}/thumbnail").status_code == 404


def test_image_detail_gathers_metadata_captions_faces_and_bucket(client: TestClient, ctx: Context) -> None:
    with ctx.catalog.session() as session:
        dataset = make_dataset(session, make_workspace(session))
        image = make_image(session, ctx.store, dataset, seed=3)
        make_metadata(session, image, "scores", {"blur": 0.1})
        make_caption(session, image, "a woman in a garden")
        make_bucket(session, image, width=1152, height=896)
    detail = client.get(f"{API}/images/{image.id}").json()
    assert detail["metadata"] == {"scores": {"blur": 0.1}}
    assert [c["text"] for c in detail["captions"]] == ["a woman in a garden"]
    assert detail["faces"] == []
    assert (detail["bucket"]["width"], detail["bucket"]["height"]) == (1152, 896)


def test_manual_review_sets_status_reason_and_manual_flag(client: TestClient, ctx: Context) -> None:
    with ctx.catalog.session() as session:
        dataset = make_dataset(session, make_workspace(session))
        image = make_image(session, ctx.store, dataset, seed=4)
    rejected = client.patch(f"{API}/images/{image.id}", json={"status": "rejected", "reason": "eyes closed"})
    assert rejected.status_code == 200
    body = rejected.json()
    assert (body["status"], body["status_reason"], body["status_manual"]) == ("rejected", "eyes closed", True)
    assert client.get(f"{API}/images/{image.id}").json()["status"] == "rejected"
    kept = client.patch(f"{API}/images/{image.id}", json={"status": "kept"}).json()
    assert kept["status"] == "kept" and kept["status_manual"] is True
    assert client.patch(f"{API}/images/{image.id}", json={"status": "duplicate"}).status_code == 422


def test_caption_edit_keeps_history(client: TestClient, ctx: Context) -> None:
    with ctx.catalog.session() as session:
        dataset = make_dataset(session, make_workspace(session))
        image = make_image(session, ctx.store, dataset, seed=5)
        make_caption(session, image, "a photo of a woman", variant="blip")
    first = client.put(f"{API}/images/{image.id}/captions/active", json={"text": "ohwx woman, red scarf"})
    assert first.status_code == 200
    assert (first.json()["variant"], first.json()["edited"], first.json()["is_active"]) == (
        "blip",
        True,
        True,
    )
    client.put(f"{API}/images/{image.id}/captions/active", json={"text": "ohwx woman, blue scarf"})
    captions = client.get(f"{API}/images/{image.id}/captions").json()
    assert captions["count"] == 3
    assert [(c["text"], c["is_active"], c["edited"]) for c in captions["data"]] == [
        ("a photo of a woman", False, False),
        ("ohwx woman, red scarf", False, True),
        ("ohwx woman, blue scarf", True, True),
    ]
    assert client.put(f"{API}/images/{image.id}/captions/active", json={"text": ""}).status_code == 422


def test_tasks_exports_and_download(client: TestClient, ctx: Context) -> None:
    with ctx.catalog.session() as session:
        dataset = make_dataset(session, make_workspace(session))
        task = make_task(session, dataset)
        export = make_export(session, ctx.store, dataset, {"img/a.jpg": b"jpeg", "img/a.txt": b"ohwx"})
    tasks = client.get(f"{API}/datasets/{dataset.id}/tasks").json()
    assert tasks["count"] == 1 and tasks["data"][0]["progress"] == 0.4
    assert client.get(f"{API}/tasks/{task.id}").json()["done"] == 4
    exports = client.get(f"{API}/datasets/{dataset.id}/exports").json()
    assert [e["id"] for e in exports["data"]] == [export.id]
    assert client.get(f"{API}/exports/{export.id}/manifest").json()["files"] == ["img/a.jpg", "img/a.txt"]
    download = client.get(f"{API}/exports/{export.id}/download")
    assert download.status_code == 200 and download.headers["content-type"] == "application/zip"
    assert "attachment" in download.headers["content-disposition"]
    assert download.content == ctx.store.get(export.object_key or "")


def test_oversized_upload_is_refused_before_any_task_starts(
    client: TestClient, ctx: Context, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LORAFORGE_MAX_FILE_BYTES", "1000")
    get_settings.cache_clear()
    with ctx.catalog.session() as session:
        dataset = make_dataset(session, make_workspace(session))
    big = ("files", ("big.jpg", b"\xff" * 5000, "image/jpeg"))
    response = client.post(f"{API}/datasets/{dataset.id}/images", files=[big])
    # Refused while streaming, by the request guard, before the route (and its spooling) got the file.
    assert response.status_code == 413
    assert response.json()["error"] == {
        "code": "request_entity_too_large",
        "message": "a file is over 1000 bytes",
    }
    assert client.post(f"{API}/datasets/{dataset.id}/images").status_code == 422  # no files at all
    assert client.get(f"{API}/datasets/{dataset.id}/tasks").json()["count"] == 0
