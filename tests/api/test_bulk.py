"""The dashboard's bulk routes: filtered cards, keep/reject and caption edits over a selection or a filter,
always inside the dataset named in the path; and staged uploads a build run takes."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from loraforge.stages.context import Context
from tests.api.factories import (
    make_bucket,
    make_caption,
    make_dataset,
    make_image,
    make_metadata,
    make_workspace,
)
from tests.support.images import jpeg_bytes


@pytest.fixture
def two_datasets(ctx: Context) -> dict[str, Any]:
    with ctx.catalog.session() as session:
        workspace = make_workspace(session)
        alice = make_dataset(session, workspace, "alice", trigger_word="ohwx")
        bob = make_dataset(session, workspace, "bob")
        images = [make_image(session, ctx.store, alice, seed=seed) for seed in range(4)]
        make_caption(session, images[0], "ohwx woman, a photo")
        make_caption(session, images[1], "ohwx woman, a photo outdoors")
        make_caption(session, images[2], "ohwx woman smiling")
        make_metadata(session, images[1], "issues", ["blurry"])
        make_metadata(session, images[1], "upscale", 1.5)
        make_bucket(session, images[2], width=1216, height=832)
        bobs = make_image(session, ctx.store, bob, seed=9)
        make_caption(session, bobs, "a man, a photo")
        return {
            "alice": alice.id,
            "bob": bob.id,
            "images": [image.id for image in images],
            "bob_image": bobs.id,
        }


def active_caption(client: TestClient, image_id: str) -> str | None:
    captions = client.get(f"/api/v1/images/{image_id}/captions").json()["data"]
    return next((c["text"] for c in captions if c["is_active"]), None)


def test_cards_carry_caption_issues_bucket_and_filter_by_each(client: TestClient, two_datasets: dict) -> None:
    url = f"/api/v1/datasets/{two_datasets['alice']}/cards"
    everything = client.get(url).json()
    assert everything["count"] == 4 and everything["issues"] == ["blurry"]
    assert everything["buckets"] == ["1216x832"]
    assert everything["checks"]["blurry"]["threshold"] == pytest.approx(0.5)
    by_id = {card["id"]: card for card in everything["data"]}
    first, second, third, fourth = two_datasets["images"]
    assert by_id[second]["caption"] == "ohwx woman, a photo outdoors" and by_id[second]["issues"] == [
        "blurry"
    ]
    assert by_id[second]["upscale"] == 1.5 and by_id[third]["bucket"] == "1216x832"
    assert by_id[fourth]["caption"] is None
    # CLIP's own count: start and end markers plus "ohwx", "woman", ",", "a", "photo", "outdoors" (ohwx is
    # one rare token of CLIP's vocabulary, which is why trainers use it as a trigger).
    assert by_id[second]["caption_tokens"] == 8
    assert by_id[fourth]["caption_tokens"] is None

    def ids(**params: str) -> list[str]:
        return [card["id"] for card in client.get(url, params=params).json()["data"]]

    assert ids(issue="blurry") == [second]
    assert ids(bucket="1216x832") == [third]
    assert ids(caption="PHOTO") == [first, second]  # case ignored
    assert ids(filename="photo-003") == [fourth]
    assert client.get(url, params={"bucket": "wide"}).status_code == 422


def test_bulk_review_over_ids_and_over_a_filter(client: TestClient, two_datasets: dict) -> None:
    alice, (first, second, third, _fourth) = two_datasets["alice"], two_datasets["images"]
    done = client.post(
        f"/api/v1/datasets/{alice}/bulk/review",
        json={"selection": {"image_ids": [first, third]}, "status": "rejected", "reason": "eyes closed"},
    ).json()
    assert sorted(done["image_ids"]) == sorted([first, third]) and done["changed"] == 2
    image = client.get(f"/api/v1/images/{first}").json()
    assert (image["status"], image["status_reason"], image["status_manual"]) == (
        "rejected",
        "eyes closed",
        True,
    )

    done = client.post(
        f"/api/v1/datasets/{alice}/bulk/review",
        json={"selection": {"filter": {"issue": "blurry"}}, "status": "kept"},
    ).json()
    assert done["image_ids"] == [second]


def test_another_datasets_picture_is_refused_and_nothing_changes(
    client: TestClient, two_datasets: dict
) -> None:
    """The dashboard's data-integrity rule: a write names the dataset shown, and the API holds it to it."""
    alice, bob_image = two_datasets["alice"], two_datasets["bob_image"]
    refused = client.post(
        f"/api/v1/datasets/{alice}/bulk/captions",
        json={
            "selection": {"image_ids": [bob_image]},
            "operation": "set",
            "text": "written to the wrong one",
        },
    )
    assert refused.status_code == 404, refused.text
    assert active_caption(client, bob_image) == "a man, a photo"
    refused = client.post(
        f"/api/v1/datasets/{alice}/bulk/review",
        json={"selection": {"image_ids": [two_datasets["images"][0], bob_image]}, "status": "kept"},
    )
    assert refused.status_code == 404
    assert client.get(f"/api/v1/images/{two_datasets['images'][0]}").json()["status"] == "pending"
    by_name = client.post(
        f"/api/v1/datasets/{alice}/bulk/review",
        json={"selection": {"image_ids": ["photo-000.jpg"]}, "status": "kept"},
    )
    assert by_name.status_code == 422 and "by id" in by_name.json()["error"]["message"]


def test_caption_find_replace_prepend_append_over_a_selection(client: TestClient, two_datasets: dict) -> None:
    alice, (first, second, third, fourth) = two_datasets["alice"], two_datasets["images"]
    url = f"/api/v1/datasets/{alice}/bulk/captions"
    done = client.post(
        url,
        json={
            "selection": {"filter": {}},
            "operation": "replace",
            "find": "photo",
            "text": "portrait",
        },
    ).json()
    assert sorted(done["image_ids"]) == sorted([first, second])
    assert done["skipped"] == 2  # third holds no "photo", fourth has no caption
    assert active_caption(client, first) == "ohwx woman, a portrait"
    assert active_caption(client, two_datasets["bob_image"]) == "a man, a photo"  # bob's untouched

    client.post(url, json={"selection": {"image_ids": [third]}, "operation": "append", "text": ", outdoors"})
    assert active_caption(client, third) == "ohwx woman smiling, outdoors"
    client.post(url, json={"selection": {"image_ids": [third]}, "operation": "prepend", "text": "close-up,"})
    assert active_caption(client, third) == "close-up, ohwx woman smiling, outdoors"
    history = client.get(f"/api/v1/images/{third}/captions").json()["data"]
    assert len(history) == 3 and all(c["edited"] for c in history if c["is_active"])
    assert active_caption(client, fourth) is None  # no caption to add to


def test_blank_and_incomplete_bulk_edits_are_refused(client: TestClient, two_datasets: dict) -> None:
    url = f"/api/v1/datasets/{two_datasets['alice']}/bulk/captions"
    selection = {"image_ids": [two_datasets["images"][0]]}
    for body in (
        {"selection": selection, "operation": "set", "text": "   "},
        {"selection": selection, "operation": "replace", "find": " ", "text": "x"},
        {"selection": {}, "operation": "append", "text": "x"},
        {"selection": {"image_ids": []}, "operation": "append", "text": "x"},
    ):
        assert client.post(url, json=body).status_code == 422, body
    assert active_caption(client, two_datasets["images"][0]) == "ohwx woman, a photo"


def test_staged_uploads_feed_a_build_run(client: TestClient, two_datasets: dict, ctx: Context) -> None:
    alice = two_datasets["alice"]
    staged = client.post(
        f"/api/v1/datasets/{alice}/uploads",
        files=[("files", ("new.jpg", jpeg_bytes(seed=42), "image/jpeg"))],
    )
    assert staged.status_code == 201, staged.text
    body = staged.json()
    assert body["names"] == ["new.jpg"] and len(body["upload_batch"]) == 32
    keys = [info.key for info in ctx.store.list(f"uploads/{alice}/{body['upload_batch']}/")]
    assert len(keys) == 1 and ctx.store.get(keys[0]) == jpeg_bytes(seed=42)
    assert client.get(f"/api/v1/datasets/{alice}/cards").json()["count"] == 4  # staged, not ingested
