"""The export flow on Postgres + S3 with Prefect: versions, files, download, diff, strict refusal."""

from __future__ import annotations

import json
import shutil
import tomllib
import zipfile
from pathlib import Path

import pytest
from PIL import Image as PILImage
from sqlalchemy import select

from loraforge.catalog import queries
from loraforge.catalog.models import Caption, Export, Image, Task
from loraforge.errors import InvalidInput
from loraforge.exporters import canonical_json
from loraforge.exporters.buckets import trainer_rule
from loraforge.stages.context import open_context
from tests.conftest import run_cli
from tests.support import runs
from tests.support.images import real_photo_paths

pytestmark = pytest.mark.usefixtures("prefect_harness", "ray_cluster")

PHOTOS = ("rocket", "china", "flower", "grace_hopper", "astronaut")


def ingest_captioned(root: Path, *, uncaptioned: str | None = None) -> dict[str, str]:
    """Ingest real photos, set a trigger word and an active caption per image; returns filename -> id."""

    root.mkdir()
    for name in PHOTOS:
        source = real_photo_paths()[name]
        shutil.copy(source, root / source.name)
    assert runs.ingest("alice", sources=[str(root)])["added"] == len(PHOTOS)
    ctx = open_context()
    with ctx.catalog.session() as session:
        queries.get_or_create_dataset(session, "alice", trigger_word="ohwx", class_word="person")
        images = {image.original_filename: image.id for image in session.scalars(select(Image))}
        for filename, image_id in images.items():
            if filename != uncaptioned:
                text = f"a photo of {Path(filename).stem.replace('_', ' ')}, daylight"
                session.add(Caption(image_id=image_id, variant="manual", text=text, is_active=True))
    return images


def test_exports_are_stored_versions_that_download_and_compare(
    tmp_path: Path, stack_env: dict[str, str]
) -> None:

    images = ingest_captioned(tmp_path / "photos")
    kohya = runs.export("alice", format="kohya", out=str(tmp_path / "alice-kohya"), repeats=10)
    folder = tmp_path / "alice-kohya"
    pictures = [p for p in folder.rglob("*") if p.suffix in (".jpg", ".png")]
    assert len(pictures) == len(images) == kohya["images"]
    for picture in pictures:
        assert picture.parent.name == "10_ohwx person"
        assert "ohwx" in picture.with_suffix(".txt").read_text(encoding="utf-8")
    config = tomllib.loads((folder / "dataset_config.toml").read_text(encoding="utf-8"))
    # The folder names its own absolute path: sd-scripts finds the pictures from wherever it is launched.
    assert config["datasets"][0]["subsets"][0]["image_dir"] == str(
        folder.resolve() / "img" / "10_ohwx person"
    )

    first = runs.export("alice", format="replicate", out=str(tmp_path / "alice.zip"))
    second = runs.export("alice", format="replicate")
    with zipfile.ZipFile(tmp_path / "alice.zip") as archive:
        names = archive.namelist()
    assert len([n for n in names if n.endswith(".txt")]) == len(images) and "/" not in "".join(names)

    ctx = open_context()
    with ctx.catalog.session() as session:
        row = session.get(Export, first["export_id"])
        assert row is not None and row.status == "COMPLETED" and row.image_count == len(images)
        assert row.object_key == first["object_key"] and row.bytes == ctx.store.stat(row.object_key).size
        assert ctx.store.get(first["manifest_key"]).decode() == canonical_json(row.manifest or {})
        task = session.get(Task, first["task_id"])
        assert task is not None and task.status == "COMPLETED" and task.done == task.total == len(images)

    listed = run_cli("exports", "--dataset", "alice", "--json", env=stack_env)
    assert listed.returncode == 0, listed.stderr
    ids = [row["id"] for row in json.loads(listed.stdout)]
    assert ids == [kohya["export_id"], first["export_id"], second["export_id"]]
    got = run_cli("exports", "get", "--dataset", "alice", first["export_id"], "--out",
                  str(tmp_path / "got.zip"), env=stack_env)  # fmt: skip
    assert got.returncode == 0, got.stderr
    assert (tmp_path / "got.zip").read_bytes() == (tmp_path / "alice.zip").read_bytes()
    diff = run_cli(
        "exports", "diff", "--dataset", "alice", first["export_id"], second["export_id"], env=stack_env
    )
    assert diff.returncode == 0 and diff.stdout.startswith("identical"), diff.stdout + diff.stderr


def test_strict_export_with_a_missing_caption_leaves_no_completed_version(
    tmp_path: Path, stack_env: dict[str, str]
) -> None:

    ingest_captioned(tmp_path / "photos", uncaptioned="china.jpg")
    with pytest.raises(InvalidInput, match="missing_caption"):
        runs.export("alice", format="kohya", out=str(tmp_path / "out"), strict=True)
    ctx = open_context()
    with ctx.catalog.session() as session:
        assert session.scalars(select(Export).where(Export.status == "COMPLETED")).all() == []
        task = session.scalar(select(Task).where(Task.kind == "export"))
        assert task is not None and task.status == "FAILED" and "missing_caption" in (task.error or "")
    assert list(ctx.store.list("exports/")) == [] and not (tmp_path / "out").exists()
    lenient = runs.export("alice", format="kohya")
    assert any("missing_caption" in line for line in lenient["warnings"])


def test_bucketed_for_onetrainer_and_exported_by_the_cli_every_picture_is_a_size_mgds_keeps(
    tmp_path: Path, stack_env: dict[str, str]
) -> None:
    ingest_captioned(tmp_path / "photos")
    bucketed = runs.bucket("alice", target="sdxl", trainer="onetrainer")
    assert bucketed["trainer"] == "onetrainer" and bucketed["processed"] == len(PHOTOS)
    rule = trainer_rule("onetrainer", "sdxl")
    for flags, folder in (([], tmp_path / "ot"), (["--relative-paths"], tmp_path / "ot-portable")):
        done = run_cli("export", "--dataset", "alice", "--format", "onetrainer", "--out", str(folder), *flags,
                       env=stack_env)  # fmt: skip
        assert done.returncode == 0, done.stderr[-3000:]
        (concept,) = json.loads((folder / "concepts.json").read_text(encoding="utf-8"))
        expected = "images" if flags else str(folder.resolve() / "images")
        assert concept["path"] == expected and concept["image"]["resolution_override"] == "1024"
        pictures = [p for p in (folder / "images").iterdir() if p.suffix in (".jpg", ".png")]
        assert len(pictures) == len(PHOTOS)
        for picture in pictures:
            with PILImage.open(picture) as image:
                assert rule.place(*image.size).keeps(*image.size), (picture.name, image.size)
