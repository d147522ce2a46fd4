"""The same pictures run through the CLI and through the API end in the same catalog: one rule each."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from typer.testing import CliRunner

from loraforge.catalog.models import Caption, Image
from loraforge.catalog.queries import current_buckets
from loraforge.stages.context import Context
from loraforge.stages.datasets import find_dataset
from tests.api.test_runs import API, wait_for_task
from tests.support.images import jpeg_bytes, real_photo_paths

pytestmark = pytest.mark.usefixtures("prefect_harness", "ray_cluster")


def photos(folder: Path) -> list[Path]:
    folder.mkdir()
    paths = real_photo_paths()
    for name in ("astronaut", "coffee", "chelsea"):
        shutil.copy(paths[name], folder / f"{name}.png")
    (folder / "coffee_copy.png").write_bytes(paths["coffee"].read_bytes())  # an exact duplicate
    (folder / "texture.jpg").write_bytes(jpeg_bytes(300, 200, seed=5))
    return sorted(folder.iterdir())


def catalog_of(ctx: Context, name: str) -> dict[str, Any]:
    """What a user sees of a dataset: each picture's status, active caption and current bucket."""
    with ctx.catalog.session() as session:
        dataset = find_dataset(session, name, "studio")
        images = session.scalars(select(Image).where(Image.dataset_id == dataset.id)).all()
        captions = {
            row.image_id: row.text
            for row in session.scalars(
                select(Caption).where(
                    Caption.image_id.in_([i.id for i in images]), Caption.is_active.is_(True)
                )
            )
        }
        buckets = current_buckets(session, dataset)
        return {
            image.original_filename: (
                image.status,
                image.status_reason,
                captions.get(image.id),
                (buckets[image.id].width, buckets[image.id].height) if image.id in buckets else None,
            )
            for image in images
        }


def test_cli_and_api_build_the_same_dataset(client: TestClient, ctx: Context, tmp_path: Path) -> None:
    from services.cli.main import app

    files = photos(tmp_path / "photos")
    runner = CliRunner()
    common = ["--workspace", "studio", "--json"]
    steps = [
        ["ingest", str(tmp_path / "photos"), "--dataset", "by-cli"],
        ["curate", "--dataset", "by-cli", "--target", "sd15"],
        ["caption", "--dataset", "by-cli", "--captioner", "template", "--trigger", "ohwx cat"],
        ["bucket", "--dataset", "by-cli", "--target", "sd15"],
        ["export", "--dataset", "by-cli", "--format", "kohya"],
    ]
    for step in steps:
        result = runner.invoke(app, [*step, *common])
        assert result.exit_code == 0, (step, result.output)

    # The CLI created workspace "studio"; the API's dataset goes beside its twin.
    workspaces = client.get(f"{API}/workspaces").json()["data"]
    studio = next(w for w in workspaces if w["name"] == "studio")
    dataset = client.post(f"{API}/workspaces/{studio['id']}/datasets", json={"name": "by-api"}).json()
    upload = client.post(
        f"{API}/datasets/{dataset['id']}/images",
        files=[("files", (path.name, path.read_bytes(), "application/octet-stream")) for path in files],
    )
    assert upload.status_code == 202, upload.text
    assert wait_for_task(client, upload.json()["task_id"])["status"] == "COMPLETED"
    for stage, body in (
        ("curate", {"target": "sd15"}),
        ("caption", {"captioner": "template", "trigger": "ohwx cat"}),
        ("bucket", {"target": "sd15"}),
        ("export", {"format": "kohya"}),
    ):
        accepted = client.post(f"{API}/datasets/{dataset['id']}/runs/{stage}", json=body)
        assert accepted.status_code == 202, (stage, accepted.text)
        task = wait_for_task(client, accepted.json()["task_id"])
        assert task["status"] == "COMPLETED", (stage, task["error"])

    by_cli, by_api = catalog_of(ctx, "by-cli"), catalog_of(ctx, "by-api")
    assert by_cli == by_api
    assert {status for status, *_ in by_cli.values()} >= {"kept"}
    captions = [caption for status, _, caption, _ in by_cli.values() if status == "kept"]
    assert captions and all(caption and "ohwx cat" in caption for caption in captions)
    with ctx.catalog.session() as session:
        cli_id = find_dataset(session, "by-cli", "studio").id
    exports_cli = client.get(f"{API}/datasets/{cli_id}/exports").json()["data"]
    exports_api = client.get(f"{API}/datasets/{dataset['id']}/exports").json()["data"]
    assert [e["image_count"] for e in exports_cli] == [e["image_count"] for e in exports_api] != [0]
