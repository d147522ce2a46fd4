"""The curate flow on Postgres + S3 with Ray and Prefect: decisions, an unreadable picture, a re-run."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import ImageFilter, ImageOps
from sqlalchemy import select

from loraforge.catalog import queries
from loraforge.catalog.models import Image, Task
from loraforge.stages.context import open_context
from loraforge.stages.curate import review_images
from loraforge.stages.report import dataset_report
from tests.support import runs
from tests.support.images import corrupt_jpeg, encode, real_photo, real_photo_paths

pytestmark = pytest.mark.usefixtures("prefect_harness", "ray_cluster")


def make_source(root: Path) -> Path:
    root.mkdir(parents=True)
    photos = real_photo_paths()
    for name in ("astronaut", "coffee", "chelsea"):
        (root / f"{name}.png").write_bytes(photos[name].read_bytes())
    (root / "coffee_mirror.jpg").write_bytes(
        encode(ImageOps.mirror(real_photo("coffee")), "JPEG", quality=90)
    )
    blurred = real_photo("rocket").filter(ImageFilter.GaussianBlur(4))
    (root / "rocket_blurred.jpg").write_bytes(encode(blurred, "JPEG", quality=90))
    return root


def statuses() -> dict[str, tuple[str, str | None, list[str]]]:
    ctx = open_context()
    with ctx.catalog.session() as session:
        report = dataset_report(session, queries.find_dataset(session, "alice"))
    return {i["filename"]: (i["status"], i["duplicate_of"], i["issues"]) for i in report["images"]}


def test_curate_flow_decides_every_picture_and_reruns_only_what_is_missing(
    tmp_path: Path, stack_env: dict[str, str]
) -> None:

    runs.ingest("alice", sources=[str(make_source(tmp_path / "photos"))])
    ctx = open_context()
    with ctx.catalog.session() as session:
        chelsea_key = session.scalar(select(Image.object_key).where(Image.original_filename == "chelsea.png"))
    assert chelsea_key is not None
    ctx.store.put(chelsea_key, corrupt_jpeg())  # the stored original rotted after ingest

    summary = runs.curate("alice", target="sd15", thresholds={"dark": 0.6}, shard_size=2)
    assert (summary["measured"], summary["failed"]) == (4, 1)
    assert summary["failures"][0]["filename"] == "chelsea.png"
    assert summary["kept"] == 2 and summary["duplicates"] == {"exact": 0, "near": 1}
    assert summary["rejected"] == {"blurry": 1, "unreadable": 1}
    assert statuses() == {
        "astronaut.png": ("kept", None, []),
        "coffee.png": ("kept", None, []),
        "coffee_mirror.jpg": ("duplicate", "coffee.png", ["near_duplicate"]),
        "rocket_blurred.jpg": ("rejected", None, ["blurry"]),
        "chelsea.png": ("rejected", None, ["unreadable"]),
    }
    with ctx.catalog.session() as session:
        task = session.get(Task, summary["task_id"])
        assert task is not None and task.status == "COMPLETED" and task.done == task.total == 5
        dataset = queries.find_dataset(session, "alice")
        assert dataset.settings["curation"]["thresholds"] == {"dark": 0.6}
        review_images(session, dataset, ["rocket_blurred.jpg"], status="kept", reason="mood shot")

    again = runs.curate("alice", target="sd15")
    assert (again["measured"], again["already_measured"], again["manual"]) == (0, 5, 1)
    assert again["thresholds"] == {"dark": 0.6}
    assert statuses()["rocket_blurred.jpg"] == ("kept", None, ["blurry"])
