"""The bucket flow on Postgres + the S3 server, with Ray and Prefect: exact buckets, faces, report, reruns."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import pytest
from PIL import Image as PILImage
from sqlalchemy import select

from loraforge.catalog.models import Derivative, Face, Image
from loraforge.imaging.buckets import bucket_set
from loraforge.stages.context import open_context
from tests.conftest import run_cli
from tests.support import runs
from tests.support.images import real_photo_paths

pytestmark = pytest.mark.usefixtures("prefect_harness", "ray_cluster")

PHOTOS = ("astronaut", "grace_hopper", "chelsea", "rocket")
FILENAMES = {"astronaut.png", "grace_hopper.jpg", "chelsea.png", "rocket.jpg"}


@pytest.fixture
def ingested(tmp_path: Path, stack_env: dict[str, str]) -> dict[str, str]:

    folder = tmp_path / "alice"
    folder.mkdir()
    for name in PHOTOS:
        shutil.copy(real_photo_paths()[name], folder / real_photo_paths()[name].name)
    assert runs.ingest("alice", sources=[str(folder)])["added"] == len(PHOTOS)
    return stack_env


def derivative_ids(rows: dict[str, list[Derivative]]) -> dict[str, list[str]]:
    return {filename: sorted(row.id for row in found) for filename, found in rows.items()}


def derivatives_by_file() -> dict[str, list[Derivative]]:
    with open_context().catalog.session() as session:
        rows = session.execute(select(Image.original_filename, Derivative).join(Derivative)).all()
    out: dict[str, list[Derivative]] = {}
    for filename, row in rows:
        out.setdefault(filename, []).append(row)
    return out


def test_bucket_flow_stores_exact_buckets_faces_and_report_then_resumes(ingested: dict[str, str]) -> None:

    summary = runs.bucket("alice", target="sdxl", shard_size=2)
    assert (summary["processed"], summary["skipped"], summary["failed"]) == (4, 0, 0)
    assert sum(summary["images_per_bucket"].values()) == 4
    # All four photos are under 1 MP, so every SDXL bucket enlarges them.
    assert {entry["filename"] for entry in summary["too_small"]} == FILENAMES

    ctx = open_context()
    sdxl = set(bucket_set("sdxl").labels)
    first = derivatives_by_file()
    for rows in first.values():
        [row] = rows
        stored = PILImage.open(io.BytesIO(ctx.store.get(row.object_key)))
        assert stored.size == (row.width, row.height) and f"{row.width}x{row.height}" in sdxl
        assert row.params_hash == summary["params_hash"] and row.params["detector"] == "opencv"
    with ctx.catalog.session() as session:
        faces = session.execute(select(Image.original_filename, Face).join(Face)).all()
    by_file = {filename: face for filename, face in faces}
    assert set(by_file) >= {"astronaut.png", "grace_hopper.jpg"}
    x0, y0, x1, y1 = by_file["astronaut.png"].bbox
    assert 150 < x0 < 200 and 40 < y0 < 90 and by_file["astronaut.png"].detector == "opencv"

    report = run_cli("report", "--dataset", "alice", "--json", env=ingested)
    assert report.returncode == 0, report.stderr
    images = {image["filename"]: image for image in json.loads(report.stdout)["images"]}
    astronaut = images["astronaut.png"]
    assert (astronaut["bucket"], astronaut["crop"], astronaut["faces"]) == ("1024x1024", [0, 0, 512, 512], 1)
    assert astronaut["crop_reason"] == "keeps the face"
    grace = images["grace_hopper.jpg"]
    gx0, gy0, gx1, gy1 = grace["crop"]
    fx0, fy0, fx1, fy1 = by_file["grace_hopper.jpg"].bbox
    assert gx0 <= fx0 and gy0 <= fy0 and fx1 <= gx1 and fy1 <= gy1

    again = run_cli("bucket", "--dataset", "alice", "--json", env=ingested)  # target: the dataset's (sdxl)
    assert again.returncode == 0, again.stderr[-2000:]
    assert (json.loads(again.stdout)["processed"], json.loads(again.stdout)["skipped"]) == (0, 4)
    assert derivative_ids(derivatives_by_file()) == derivative_ids(first)

    smaller = runs.bucket("alice", target="sdxl", resolution=768)
    assert smaller["processed"] == 4 and smaller["params_hash"] != summary["params_hash"]
    now = derivatives_by_file()
    assert all(len(rows) == 2 for rows in now.values())  # the 1024 ones are kept beside the 768 ones
    assert all(ctx.store.exists(row.object_key) for rows in now.values() for row in rows)
    new_sizes = {
        f"{row.width}x{row.height}"
        for rows in now.values()
        for row in rows
        if row.params_hash == smaller["params_hash"]
    }
    assert new_sizes <= set(bucket_set("sdxl", resolution=768).labels)
    report = json.loads(run_cli("report", "--dataset", "alice", "--json", env=ingested).stdout)
    assert {image["bucket"] for image in report["images"]} <= set(bucket_set("sdxl", resolution=768).labels)
