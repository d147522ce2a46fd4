"""The curate stage and the driver's decisions run inline on the embedded catalog, with real photos."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image as PILImage
from PIL import ImageFilter, ImageOps
from sqlalchemy import select

from loraforge.catalog import queries
from loraforge.catalog.models import Dataset, Image, ImageMetadata
from loraforge.errors import InvalidInput, NotFound
from loraforge.sources.staging import stage_sources
from loraforge.stages.context import Context, open_context
from loraforge.stages.curate import (
    CurateStage,
    clip_embed,
    curate_dataset,
    curate_options,
    record_features,
    review_images,
    select_curate_work,
)
from loraforge.stages.ingest import IngestStage, record_ingest
from loraforge.stages.report import dataset_report
from loraforge.stages.runner import run_inline
from tests.conftest import run_cli
from tests.support.images import corrupt_jpeg, encode, real_photo, real_photo_paths

MAX_PIXELS = 80_000_000


def write_corpus(folder: Path) -> Path:
    """Real photos, a resized copy, a mirrored copy, a blurred one, a dark one."""
    folder.mkdir(parents=True)
    photos = real_photo_paths()
    for name in ("astronaut", "coffee", "chelsea"):
        (folder / f"{name}.png").write_bytes(photos[name].read_bytes())
    (folder / "flower.jpg").write_bytes(photos["flower"].read_bytes())
    small = real_photo("astronaut").resize((384, 384), PILImage.Resampling.LANCZOS)
    (folder / "astronaut_small.jpg").write_bytes(encode(small, "JPEG", quality=90))
    (folder / "coffee_mirror.jpg").write_bytes(
        encode(ImageOps.mirror(real_photo("coffee")), "JPEG", quality=90)
    )
    blurred = real_photo("rocket").filter(ImageFilter.GaussianBlur(4))
    (folder / "rocket_blurred.jpg").write_bytes(encode(blurred, "JPEG", quality=90))
    dark = PILImage.fromarray((np.asarray(real_photo("china")) * 0.2).astype(np.uint8))
    (folder / "china_dark.jpg").write_bytes(encode(dark, "JPEG", quality=90))
    return folder


def ingest(ctx: Context, folder: Path) -> str:
    items = stage_sources([str(folder)], ctx.source_limits, ctx.store, dataset_id="test", batch="b")
    stage = IngestStage(store_config=ctx.store_config, limits=ctx.source_limits, max_pixels=MAX_PIXELS)
    results = run_inline(stage, items)
    with ctx.catalog.session() as session:
        dataset = queries.get_or_create_dataset(session, "alice", target_model="sd15")
        record_ingest(session, results, dataset_id=dataset.id)
        return dataset.id


def curate(ctx: Context, dataset_id: str, **options: Any) -> tuple[int, dict[str, Any]]:
    """What the flow does, inline: measure what is missing, then decide; returns (measured, summary)."""
    with ctx.catalog.session() as session:
        items, _ = select_curate_work(session, dataset_id)
    results = run_inline(CurateStage(store_config=ctx.store_config, max_pixels=MAX_PIXELS), items)
    with ctx.catalog.session() as session:
        record_features(session, results)
        dataset = session.get(Dataset, dataset_id)
        assert dataset is not None
        embed = options.pop("embed", None)
        summary = curate_dataset(session, dataset, curate_options(dataset, **options), embed=embed)
    return len(items), summary.to_dict()


def report(ctx: Context, dataset_id: str) -> dict[str, dict[str, Any]]:
    with ctx.catalog.session() as session:
        dataset = session.get(Dataset, dataset_id)
        assert dataset is not None
        return {image["filename"]: image for image in dataset_report(session, dataset)["images"]}


@pytest.fixture
def ctx(embedded_env: Path) -> Context:
    return open_context()


@pytest.fixture
def dataset_id(ctx: Context, tmp_path: Path) -> str:
    return ingest(ctx, write_corpus(tmp_path / "photos"))


def test_curate_marks_kept_rejected_and_duplicates_with_reasons(ctx: Context, dataset_id: str) -> None:
    measured, summary = curate(ctx, dataset_id)
    images = report(ctx, dataset_id)
    assert measured == len(images) == 8
    status = {name: image["status"] for name, image in images.items()}
    assert status == {
        "astronaut.png": "kept",
        "astronaut_small.jpg": "duplicate",
        "coffee.png": "kept",
        "coffee_mirror.jpg": "duplicate",
        "chelsea.png": "kept",
        "flower.jpg": "kept",
        "rocket_blurred.jpg": "rejected",
        "china_dark.jpg": "rejected",
    }
    assert images["astronaut_small.jpg"]["duplicate_of"] == "astronaut.png"
    assert images["astronaut_small.jpg"]["status_reason"].startswith("near duplicate of astronaut.png")
    assert images["coffee_mirror.jpg"]["duplicate_of"] == "coffee.png"
    assert "mirrored" in images["coffee_mirror.jpg"]["status_reason"]
    assert images["coffee_mirror.jpg"]["issues"] == ["near_duplicate"]
    assert images["rocket_blurred.jpg"]["issues"] == ["blurry"]
    assert images["rocket_blurred.jpg"]["scores"]["blurry"] > 0.5
    assert images["rocket_blurred.jpg"]["status_reason"].startswith("blurry (score")
    assert "dark" in images["china_dark.jpg"]["issues"]
    assert images["astronaut.png"]["issues"] == [] and images["astronaut.png"]["duplicate_of"] is None
    assert set(images["flower.jpg"]["scores"]) >= {"blurry", "dark", "low_resolution", "grayscale"}
    assert summary["kept"] == 4 and summary["duplicates"] == {"exact": 0, "near": 2}
    assert summary["rejected"]["blurry"] == 1 and summary["rejected"]["dark"] >= 1


def test_rerun_measures_nothing_and_decides_the_same(ctx: Context, dataset_id: str) -> None:
    curate(ctx, dataset_id)
    first = report(ctx, dataset_id)
    with ctx.catalog.session() as session:
        items, already = select_curate_work(session, dataset_id)
    assert (items, already) == ([], 8)
    measured, _ = curate(ctx, dataset_id)
    assert measured == 0
    assert report(ctx, dataset_id) == first


def test_manual_review_survives_a_rerun(ctx: Context, dataset_id: str) -> None:
    curate(ctx, dataset_id)
    with ctx.catalog.session() as session:
        dataset = queries.find_dataset(session, "alice")
        review_images(session, dataset, ["astronaut.png"], status="rejected", reason="wrong person")
        blurred_id = next(
            i for i in queries.dataset_images(session, dataset_id) if "rocket" in i.original_filename
        ).id
        review_images(session, dataset, [blurred_id], status="kept")
    _, summary = curate(ctx, dataset_id)
    images = report(ctx, dataset_id)
    assert images["astronaut.png"]["status"] == "rejected"
    assert images["astronaut.png"]["status_reason"] == "wrong person"
    assert images["astronaut.png"]["status_manual"] is True
    # The copy left is no longer a duplicate of a rejected picture: it now represents the group.
    assert images["astronaut_small.jpg"]["status"] == "kept"
    assert images["rocket_blurred.jpg"]["status"] == "kept"
    assert images["rocket_blurred.jpg"]["status_reason"] == "kept by hand"
    assert images["rocket_blurred.jpg"]["issues"] == ["blurry"]  # still reported, not acted on
    assert summary["manual"] == 2
    with ctx.catalog.session() as session:
        dataset = queries.find_dataset(session, "alice")
        review_images(session, dataset, ["rocket_blurred.jpg"], status="auto")
    curate(ctx, dataset_id)
    assert report(ctx, dataset_id)["rocket_blurred.jpg"]["status"] == "rejected"


def test_review_refuses_unknown_and_ambiguous_names(ctx: Context, dataset_id: str) -> None:
    with ctx.catalog.session() as session:
        dataset = queries.find_dataset(session, "alice")
        with pytest.raises(NotFound, match="nope.jpg"):
            review_images(session, dataset, ["flower.jpg", "nope.jpg"], status="kept")
        with pytest.raises(InvalidInput, match="kept, rejected or auto"):
            review_images(session, dataset, ["flower.jpg"], status="maybe")
        assert (
            session.scalar(select(Image.status_manual).where(Image.original_filename == "flower.jpg"))
            is False
        )


def test_corrupt_bytes_in_storage_are_rejected_as_unreadable(ctx: Context, dataset_id: str) -> None:
    with ctx.catalog.session() as session:
        key = session.scalar(select(Image.object_key).where(Image.original_filename == "flower.jpg"))
    assert key is not None
    ctx.store.put(key, corrupt_jpeg())  # bit rot after ingest
    curate(ctx, dataset_id)
    flower = report(ctx, dataset_id)["flower.jpg"]
    assert flower["status"] == "rejected"
    assert flower["status_reason"].startswith("unreadable: corrupt or truncated image")
    assert flower["issues"] == ["unreadable"]
    assert report(ctx, dataset_id)["chelsea.png"]["status"] == "kept"
    measured, _ = curate(ctx, dataset_id)
    assert measured == 0  # a known-bad picture is not measured again


def test_thresholds_override_and_are_saved_with_the_dataset(ctx: Context, dataset_id: str) -> None:
    _, summary = curate(ctx, dataset_id, thresholds={"blurry": 1.01})
    assert report(ctx, dataset_id)["rocket_blurred.jpg"]["status"] == "kept"
    assert "blurry" not in summary["rejected"]
    with ctx.catalog.session() as session:
        settings = queries.find_dataset(session, "alice").settings
    assert settings["curation"]["thresholds"] == {"blurry": 1.01}
    curate(ctx, dataset_id)  # no thresholds given: the saved ones apply
    assert report(ctx, dataset_id)["rocket_blurred.jpg"]["status"] == "kept"
    curate(ctx, dataset_id, target="sdxl")  # 1024 px training size: the small copies are now low resolution
    assert "low_resolution" in report(ctx, dataset_id)["chelsea.png"]["issues"]
    with ctx.catalog.session() as session, pytest.raises(InvalidInput, match="unknown check 'blury'"):
        curate_options(queries.find_dataset(session, "alice"), thresholds={"blury": 0.5})


def test_clip_embeddings_confirm_or_split_near_duplicates(
    ctx: Context, dataset_id: str, tmp_path: Path
) -> None:
    from tests.support.tiny_models import build_tiny_clip

    name, checkpoint = build_tiny_clip(tmp_path / "clip")
    spec = f"{name}:{checkpoint}"

    def embed_with(session: Any) -> Any:
        return clip_embed(session, ctx.store, spec=spec, max_pixels=MAX_PIXELS)

    with ctx.catalog.session() as session:
        dataset = session.get(Dataset, dataset_id)
        assert dataset is not None
        curate(ctx, dataset_id)  # measure first
        summary = curate_dataset(session, dataset, curate_options(dataset), embed=embed_with(session))
    assert summary.embedded == 4  # two groups with a near copy: keeper and copy each
    with ctx.catalog.session() as session:
        stored = session.scalars(select(ImageMetadata).where(ImageMetadata.key == "clip_embedding")).all()
        assert len(stored) == 4 and all(row.value["model"] == spec for row in stored)
        dataset = session.get(Dataset, dataset_id)
        assert dataset is not None
        # A similarity bar no two pictures reach: every near copy leaves its group.
        dataset.settings = {"curation": {"clip_threshold": 1.01}}
        session.flush()
        curate_dataset(session, dataset, curate_options(dataset), embed=embed_with(session))
    images = report(ctx, dataset_id)
    assert images["astronaut_small.jpg"]["status"] == "kept"
    assert images["coffee_mirror.jpg"]["status"] == "kept"
    with pytest.raises(InvalidInput, match="MODEL:WEIGHTS"):
        clip_embed(None, ctx.store, spec=name, max_pixels=MAX_PIXELS)  # type: ignore[arg-type]


def test_review_command_keeps_and_rejects_by_filename(
    ctx: Context, dataset_id: str, embedded_env: Path
) -> None:
    curate(ctx, dataset_id)
    env = {"LORAFORGE_HOME": str(embedded_env)}
    kept = run_cli("review", "--dataset", "alice", "--keep", "coffee_mirror.jpg", "--json", env=env)
    assert kept.returncode == 0, kept.stderr
    change = json.loads(kept.stdout)["changes"][0]
    assert (change["filename"], change["previous"], change["status"]) == (
        "coffee_mirror.jpg",
        "duplicate",
        "kept",
    )
    rejected = run_cli("review", "-d", "alice", "--reject", "chelsea.png", "--reason", "cat", env=env)
    assert rejected.returncode == 0, rejected.stderr
    images = report(ctx, dataset_id)
    assert (
        images["coffee_mirror.jpg"]["status"] == "kept"
        and images["coffee_mirror.jpg"]["duplicate_of"] is None
    )
    assert (images["chelsea.png"]["status"], images["chelsea.png"]["status_reason"]) == ("rejected", "cat")
    missing = run_cli("review", "-d", "alice", "--keep", "ghost.jpg", env=env)
    assert missing.returncode == 1 and "ghost.jpg" in missing.stderr
    both = run_cli("review", "-d", "alice", "--keep", "--reject", "chelsea.png", env=env)
    assert both.returncode == 1 and "one of --keep" in both.stderr


def test_grayscale_is_kept_and_tagged_unless_the_user_asks_to_reject_it(ctx: Context, tmp_path: Path) -> None:
    from loraforge.captioning import CaptionPolicy
    from loraforge.stages.caption import select_caption_work

    folder = tmp_path / "bw"
    folder.mkdir()
    (folder / "astronaut.png").write_bytes(real_photo_paths()["astronaut"].read_bytes())
    grey = real_photo("coffee").convert("L").convert("RGB")
    (folder / "coffee_bw.jpg").write_bytes(encode(grey, "JPEG", quality=90))
    dataset_id = ingest(ctx, folder)

    curate(ctx, dataset_id)
    images = report(ctx, dataset_id)
    assert images["coffee_bw.jpg"]["status"] == "kept" and "grayscale" in images["coffee_bw.jpg"]["issues"]
    assert images["astronaut.png"]["status"] == "kept" and images["astronaut.png"]["issues"] == []
    with ctx.catalog.session() as session:
        items, _ = select_caption_work(session, dataset_id, "template")
    tags = {item["filename"]: item["tags"] for item in items}
    assert tags == {"astronaut.png": [], "coffee_bw.jpg": ["black and white photo"]}
    policy = CaptionPolicy(trigger="ohwx", class_word="cup")
    assert (
        policy.apply("a photo", tags=tags["coffee_bw.jpg"]).text == "ohwx cup, a photo, black and white photo"
    )
    assert policy.apply("a black and white photo", tags=tags["coffee_bw.jpg"]).text == (
        "ohwx cup, a black and white photo"  # said once
    )

    curate(ctx, dataset_id, reject=["grayscale"])
    assert report(ctx, dataset_id)["coffee_bw.jpg"]["status"] == "rejected"
    curate(ctx, dataset_id)  # the choice is saved on the dataset
    assert report(ctx, dataset_id)["coffee_bw.jpg"]["status"] == "rejected"
    curate(ctx, dataset_id, reject=[])
    assert report(ctx, dataset_id)["coffee_bw.jpg"]["status"] == "kept"
    with ctx.catalog.session() as session, pytest.raises(InvalidInput, match="not a check that only tags"):
        curate_options(queries.find_dataset(session, "alice"), reject=["blurry"])


def test_datasets_lists_every_dataset_with_its_counts(ctx: Context, dataset_id: str) -> None:
    from typer.testing import CliRunner

    from services.cli.main import app

    curate(ctx, dataset_id)
    with ctx.catalog.session() as session:
        queries.get_or_create_dataset(session, "bob", "studio", trigger_word="zxq", class_word="dog")
    runner = CliRunner()
    listed = runner.invoke(app, ["datasets", "--json"])
    assert listed.exit_code == 0, listed.output
    rows = {row["name"]: row for row in json.loads(listed.stdout)}
    assert set(rows) == {"alice", "bob"}
    with ctx.catalog.session() as session:
        counts = dataset_report(session, queries.find_dataset(session, "alice"))["counts"]
    assert rows["alice"]["by_status"] == dict(sorted(counts.items()))
    assert rows["alice"]["images"] == sum(counts.values()) == 8  # the corpus's eight pictures
    assert (rows["bob"]["workspace"], rows["bob"]["images"], rows["bob"]["by_status"]) == ("studio", 0, {})
    studio = runner.invoke(app, ["datasets", "--workspace", "studio"])
    assert studio.exit_code == 0 and "bob" in studio.stdout and "alice" not in studio.stdout
    assert "zxq dog" in studio.stdout
