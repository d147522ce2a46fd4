"""Sloppy or hostile input gets a 4xx that names the problem, never a 500, and loses nothing good."""

from __future__ import annotations

import io

from fastapi.testclient import TestClient

from loraforge.stages.context import Context
from tests.api.factories import make_dataset, make_export, make_workspace
from tests.support.images import jpeg_bytes

API = "/api/v1"


def test_blank_or_control_character_names_and_captions_are_refused(client: TestClient, ctx: Context) -> None:
    for name in ("   ", "\t\n", "bob\r\nSet-Cookie: x=1", "nul\x00name"):
        assert client.post(f"{API}/workspaces", json={"name": name}).status_code == 422, repr(name)
    workspace = client.post(f"{API}/workspaces", json={"name": "  studio  "}).json()
    assert workspace["name"] == "studio"  # trimmed, as shown everywhere after
    datasets = f"{API}/workspaces/{workspace['id']}/datasets"
    assert client.post(datasets, json={"name": " "}).status_code == 422
    assert client.post(datasets, json={"name": "alice\n"}).json()["name"] == "alice"
    with ctx.catalog.session() as session:
        from tests.api.factories import make_image

        dataset = make_dataset(session, make_workspace(session, "other"), name="captioned")
        image = make_image(session, ctx.store, dataset)
    answer = client.put(f"{API}/images/{image.id}/captions/active", json={"text": "   "})
    assert answer.status_code == 422


def test_a_run_with_a_null_body_is_refused(client: TestClient, ctx: Context) -> None:
    with ctx.catalog.session() as session:
        dataset = make_dataset(session, make_workspace(session))
    answer = client.post(
        f"{API}/datasets/{dataset.id}/runs/curate",
        content="null",
        headers={"Content-Type": "application/json"},
    )
    assert answer.status_code == 422


def test_paging_beyond_any_row_is_bounded(client: TestClient, ctx: Context) -> None:
    with ctx.catalog.session() as session:
        dataset = make_dataset(session, make_workspace(session))
    assert client.get(f"{API}/datasets/{dataset.id}/images?offset=9223372036854775808").status_code == 422
    assert client.get(f"{API}/datasets/{dataset.id}/images?offset=1000000000").json()["data"] == []


def test_an_export_of_a_dataset_with_a_hostile_name_still_downloads(client: TestClient, ctx: Context) -> None:
    with ctx.catalog.session() as session:
        # The CLI lets a user name a dataset anything; the header must survive it.
        dataset = make_dataset(session, make_workspace(session), name='bob\r\nSet-Cookie: x=1"é')
        export = make_export(session, ctx.store, dataset, {"a.txt": b"caption"})
    answer = client.get(f"{API}/exports/{export.id}/download")
    assert answer.status_code == 200
    disposition = answer.headers["content-disposition"]
    assert "\r" not in disposition and "\n" not in disposition and "set-cookie" not in answer.headers
    assert disposition.startswith('attachment; filename="bob__Set-Cookie: x=1__-')
    assert "filename*=UTF-8''bob__Set-Cookie%3A%20x%3D1%22%C3%A9-" in disposition


def test_bad_upload_filenames_are_cleaned_and_the_good_file_is_kept(client: TestClient, ctx: Context) -> None:
    with ctx.catalog.session() as session:
        dataset = make_dataset(session, make_workspace(session))
    photo = jpeg_bytes(64, 64, seed=1)
    files = [
        ("files", ("good.jpg", io.BytesIO(photo), "image/jpeg")),
        ("files", ("nul\x00byte.jpg", io.BytesIO(photo + b"1"), "image/jpeg")),
        ("files", ("x" * 300 + ".jpg", io.BytesIO(photo + b"2"), "image/jpeg")),
        ("files", ("../../etc/cr\r\nlf.jpg", io.BytesIO(photo + b"3"), "image/jpeg")),
    ]
    answer = client.post(f"{API}/datasets/{dataset.id}/images", files=files)
    assert answer.status_code == 202, answer.text
    staged = [info.key for info in ctx.store.list(f"uploads/{dataset.id}/")]
    assert len(staged) == 4
    names = [key.rsplit("/", 1)[1] for key in staged]
    assert "good.jpg" in names
    assert all(len(name.encode()) <= 255 and "\x00" not in name and ".." not in name for name in names)
