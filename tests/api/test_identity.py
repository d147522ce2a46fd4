"""Reference faces through the API: pick pictures of the dataset, read them back, clear them; roles apply.

Real app on Postgres + the S3 server; the pictures are the shipped portraits, and the curation run after
the pick rejects the other person.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from PIL import Image as PILImage
from sqlalchemy.orm import Session

from loraforge import users
from loraforge.catalog.models import Dataset, Image
from loraforge.config import get_settings
from loraforge.models.identity import DLIB_MODEL
from loraforge.stages.context import Context
from loraforge.stages.curate_identity import identity_config
from loraforge.storage import ObjectStore
from loraforge.storage.keys import original_key
from tests.api.factories import make_dataset, make_workspace
from tests.identity.photos import AUGMENTATIONS, portrait
from tests.support.images import encode, real_photo

API = "/api/v1"
ADMIN_TOKEN = "admin-token"


def put_photo(
    session: Session, store: ObjectStore, dataset: Dataset, picture: PILImage.Image, name: str
) -> Image:
    data = encode(picture, "JPEG", quality=90)
    sha = hashlib.sha256(data).hexdigest()
    store.put(original_key(sha), data, content_type="image/jpeg")
    image = Image(
        dataset_id=dataset.id,
        sha256=sha,
        object_key=original_key(sha),
        original_filename=name,
        source_kind="file",
        source_uri=f"/photos/{name}",
        width=picture.width,
        height=picture.height,
        format="jpeg",
        bytes=len(data),
        phash="0" * 16,
        status="pending",
    )
    session.add(image)
    session.flush()
    return image


@pytest.fixture
def auth_client(ctx: Context, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    from services.api.main import create_app

    monkeypatch.setenv("LORAFORGE_API_TOKEN", ADMIN_TOKEN)
    get_settings.cache_clear()
    with TestClient(create_app()) as client:
        yield client


def _as(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_set_read_and_clear_reference_faces(auth_client: TestClient, ctx: Context) -> None:
    with ctx.catalog.session() as session:
        owner, token = users.add_user(session, "olga")
        viewer, viewer_token = users.add_user(session, "vera")
        outsider, outsider_token = users.add_user(session, "otto")
        workspace = make_workspace(session, "portraits")
        users.grant(session, workspace, owner, "owner")
        users.grant(session, workspace, viewer, "viewer")
        dataset = make_dataset(session, workspace, name="hopper")
        other = make_dataset(session, workspace, name="other")
        hopper = put_photo(session, ctx.store, dataset, portrait("grace_hopper"), "hopper.jpg")
        flipped = put_photo(
            session, ctx.store, dataset, AUGMENTATIONS["flip"](portrait("grace_hopper")), "hopper_flip.jpg"
        )
        cat = put_photo(session, ctx.store, dataset, real_photo("chelsea"), "cat.jpg")
        elsewhere = put_photo(session, ctx.store, other, portrait("astronaut"), "astronaut.jpg")
        ids = {"dataset": dataset.id, "hopper": hopper.id, "flip": flipped.id, "cat": cat.id}
        ids["elsewhere"] = elsewhere.id
    url = f"{API}/datasets/{ids['dataset']}/identity/references"

    empty = auth_client.get(url, headers=_as(viewer_token))
    assert empty.status_code == 200
    assert empty.json() == {"model": None, "max_distance": 0.6, "data": [], "count": 0}

    body = {"image_ids": [ids["hopper"], ids["flip"]], "max_distance": 0.55}
    assert auth_client.put(url, json=body, headers=_as(viewer_token)).status_code == 403
    assert auth_client.put(url, json=body, headers=_as(outsider_token)).status_code == 404

    done = auth_client.put(url, json=body, headers=_as(token))
    assert done.status_code == 200, done.text
    result = done.json()
    assert result["model"] == DLIB_MODEL and result["max_distance"] == 0.55 and result["count"] == 2
    assert [r["image_id"] for r in result["data"]] == [ids["hopper"], ids["flip"]]
    assert [r["name"] for r in result["data"]] == ["hopper.jpg", "hopper_flip.jpg"]
    x0, y0, x1, y1 = result["data"][0]["box"]
    assert 120 < x0 < x1 < 400 and 100 < y0 < y1 < 360  # her face in the 512x600 photo
    assert auth_client.get(url, headers=_as(viewer_token)).json() == result
    with ctx.catalog.session() as session:
        saved = identity_config(session.get(Dataset, ids["dataset"]))
        assert saved is not None and len(saved.references[0].vector) == 128

    no_face = auth_client.put(url, json={"image_ids": [ids["cat"]]}, headers=_as(token))
    assert no_face.status_code == 422 and "cat.jpg: no face found" in no_face.json()["error"]["message"]
    foreign = auth_client.put(url, json={"image_ids": [ids["elsewhere"]]}, headers=_as(token))
    assert foreign.status_code == 404 and ids["elsewhere"] in foreign.json()["error"]["message"]
    for bad in ({"image_ids": []}, {"image_ids": [ids["hopper"]], "max_distance": 1.5}, {"ids": ["x"]}):
        assert auth_client.put(url, json=bad, headers=_as(token)).status_code == 422, bad
    # The refused requests changed nothing.
    assert auth_client.get(url, headers=_as(token)).json() == result

    assert auth_client.delete(url, headers=_as(viewer_token)).status_code == 403
    assert auth_client.delete(url, headers=_as(token)).status_code == 204
    assert auth_client.get(url, headers=_as(token)).json()["count"] == 0
    missing = auth_client.get(f"{API}/datasets/nope/identity/references", headers=_as(ADMIN_TOKEN))
    assert missing.status_code == 404


def test_the_routes_and_their_errors_are_documented(auth_client: TestClient) -> None:
    paths = auth_client.get(f"{API}/openapi.json").json()["paths"]
    route = paths[f"{API}/datasets/{{dataset_id}}/identity/references"]
    assert set(route) == {"get", "put", "delete"}
    put = route["put"]["responses"]
    assert {"200", "401", "403", "404", "422", "503"} <= set(put)
    assert "no face" in put["422"]["description"] and "dlib" in put["503"]["description"]
