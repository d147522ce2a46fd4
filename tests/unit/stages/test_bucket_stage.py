"""The bucket stage run inline: exact bucket sizes, faces inside crops, EXIF, and the driver's recording."""

from __future__ import annotations

import io
import random
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image as PILImage
from PIL import ImageDraw
from sqlalchemy import select

from loraforge.catalog import queries
from loraforge.catalog.models import Derivative, Face, Image
from loraforge.errors import InvalidInput
from loraforge.imaging.resize import render_crop
from loraforge.stages.bucket import (
    BucketConfig,
    BucketStage,
    bucket_overview,
    make_current,
    record_bucket,
    select_bucket_work,
)
from loraforge.stages.context import open_context
from loraforge.stages.report import dataset_report
from loraforge.stages.runner import run_inline
from loraforge.storage import ObjectStore, StoreConfig, open_store
from tests.support.images import encode, real_photo, real_photo_paths

MAX_PIXELS = 80_000_000


def make_stage(config: StoreConfig, options: BucketConfig | None = None, **kw: Any) -> BucketStage:
    return BucketStage(
        store_config=config,
        max_pixels=MAX_PIXELS,
        dataset_id="ds",
        options=options or BucketConfig(target="sdxl"),
        **kw,
    )


def put(store: ObjectStore, name: str, data: bytes) -> dict[str, Any]:
    store.put(f"originals/{name}", data)
    image = PILImage.open(io.BytesIO(data))
    width, height = image.size
    if image.getexif().get(0x0112, 1) in (5, 6, 7, 8):
        width, height = height, width
    return {"image_id": name, "object_key": f"originals/{name}", "width": width, "height": height}


def shapes_image(width: int, height: int, seed: int = 0) -> PILImage.Image:
    """Gradients and discs: a picture with structure that a face detector rejects quickly (noise is slow)."""
    rng = np.random.default_rng(seed)
    x, y = np.linspace(0, 1, width)[None, :, None], np.linspace(0, 1, height)[:, None, None]
    colours = rng.uniform(0, 127, (3, 3))
    pixels = colours[0] * x + colours[1] * y + colours[2] * (1 - x) * (1 - y)
    image = PILImage.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    for _ in range(4):
        x0, y0 = int(rng.integers(0, width)), int(rng.integers(0, height))
        draw.ellipse(
            (x0, y0, x0 + width // 5, y0 + height // 5), fill=tuple(rng.integers(0, 255, 3).tolist())
        )
    return image


def with_orientation(displayed: PILImage.Image, orientation: int) -> bytes:
    """JPEG bytes whose stored frame, turned by the EXIF orientation, shows `displayed`."""
    undo = {
        6: PILImage.Transpose.ROTATE_90,
        8: PILImage.Transpose.ROTATE_270,
        3: PILImage.Transpose.ROTATE_180,
    }
    exif = PILImage.Exif()
    exif[0x0112] = orientation
    return encode(displayed.transpose(undo[orientation]), "JPEG", quality=95, exif=exif.tobytes())


def decoded(store: ObjectStore, key: str) -> PILImage.Image:
    return PILImage.open(io.BytesIO(store.get(key)))


@pytest.fixture
def store_config(tmp_path: Path) -> StoreConfig:
    return StoreConfig(url=f"file://{tmp_path / 'objects'}")


def test_every_processed_picture_is_exactly_a_bucket_of_its_target(store_config: StoreConfig) -> None:
    store = open_store(store_config)
    rng = random.Random(5)
    sizes = [(50, 30), (512, 512), (4000, 3000), (3000, 400), (333, 1999), (1025, 767)]
    sizes += [(rng.randint(64, 2500), rng.randint(64, 2500)) for _ in range(4)]
    items = [
        put(store, f"p{i}.jpg", encode(shapes_image(w, h, seed=i), "JPEG")) for i, (w, h) in enumerate(sizes)
    ]
    items.append(put(store, "rot6.jpg", with_orientation(shapes_image(900, 1400, seed=40), 6)))
    items.append(put(store, "alpha.png", encode(shapes_image(700, 300, seed=41).convert("RGBA"), "PNG")))
    items.append(put(store, "grey.png", encode(shapes_image(640, 800, seed=42).convert("L"), "PNG")))
    for options in (
        BucketConfig(target="sdxl"),
        BucketConfig(target="sd15"),
        BucketConfig(target="flux", resolution=768),
        BucketConfig(target="sdxl", buckets="1024x1024,1216x832,832x1216"),
    ):
        stage = make_stage(store_config, options, output_format="png" if options.target == "flux" else "jpg")
        labels = set(stage.buckets.labels)
        for item, result in zip(items, run_inline(stage, items), strict=True):
            assert result["error"] is None, result
            out = decoded(store, result["derivative_key"])
            assert out.size == (result["bucket_width"], result["bucket_height"])
            assert result["bucket"] in labels and out.mode == "RGB"
            x0, y0, x1, y1 = result["box"]
            assert 0 <= x0 < x1 <= item["width"] and 0 <= y0 < y1 <= item["height"]
            assert result["derivative_key"].endswith(f"/bucket-{stage.params_hash}.{stage.output_format}")


@pytest.mark.parametrize(
    ("image_format", "jpeg_ext", "png_ext"),
    [("auto", "jpg", "png"), ("jpg", "jpg", "jpg"), ("png", "png", "png"), ("webp", "webp", "webp")],
)
def test_image_format_auto_keeps_png_sources_lossless(
    store_config: StoreConfig, image_format: str, jpeg_ext: str, png_ext: str
) -> None:
    store = open_store(store_config)
    items = [
        put(store, "photo.jpg", encode(shapes_image(1100, 1100, seed=1), "JPEG")),
        put(store, "drawing.png", encode(shapes_image(1100, 1100, seed=2), "PNG")),
    ]
    stage = make_stage(store_config, output_format=image_format)
    photo, drawing = run_inline(stage, items)
    assert photo["derivative_key"].endswith(f".{jpeg_ext}") and drawing["derivative_key"].endswith(
        f".{png_ext}"
    )
    expected = {"jpg": "JPEG", "png": "PNG", "webp": "WEBP"}
    for result, ext in ((photo, jpeg_ext), (drawing, png_ext)):
        with PILImage.open(io.BytesIO(store.get(result["derivative_key"]))) as written:
            assert written.format == expected[ext] and written.size == (1024, 1024)


@pytest.mark.parametrize("buckets", [None, "1216x832", "832x1216", "1024x1024"])
def test_face_box_lies_inside_the_crop_for_astronaut_and_grace_hopper(
    store_config: StoreConfig, buckets: str | None
) -> None:
    store = open_store(store_config)
    items = [
        put(store, name, real_photo_paths()[name].read_bytes()) for name in ("astronaut", "grace_hopper")
    ]
    stage = make_stage(store_config, BucketConfig(target="sdxl", buckets=buckets))
    for result in run_inline(stage, items):
        assert result["error"] is None
        assert len(result["faces"]) == 1, result["faces"]
        fx0, fy0, fx1, fy1 = result["faces"][0]["bbox"]
        x0, y0, x1, y1 = result["box"]
        assert x0 <= fx0 and y0 <= fy0 and fx1 <= x1 and fy1 <= y1, (result["image_id"], result["box"])
        assert result["crop_reason"].startswith("keeps the face")


def test_exif_rotated_picture_is_cropped_in_displayed_coordinates(store_config: StoreConfig) -> None:
    store = open_store(store_config)
    displayed = PILImage.new("RGB", (600, 1100), (128, 128, 128))
    displayed.paste(real_photo("astronaut"), (50, 550))
    item = put(store, "turned.jpg", with_orientation(displayed, 6))
    assert (item["width"], item["height"]) == (600, 1100)
    stage = make_stage(store_config, BucketConfig(target="sdxl", buckets="1024x1024"))
    [result] = run_inline(stage, [item])
    fx0, fy0, fx1, fy1 = result["faces"][0]["bbox"]
    assert 200 < fx0 < 250 and 590 < fy0 < 640  # the astronaut's face, pasted at (50, 550)
    x0, y0, x1, y1 = result["box"]
    assert x0 <= fx0 and y0 <= fy0 and fx1 <= x1 and fy1 <= y1
    expected = render_crop(displayed, tuple(result["box"]), stage.buckets.buckets[0])
    out = decoded(store, result["derivative_key"]).convert("RGB")
    assert np.abs(np.asarray(out, np.int16) - np.asarray(expected, np.int16)).mean() < 4.0


def test_unreadable_picture_becomes_an_error_row_and_writes_nothing(store_config: StoreConfig) -> None:
    store = open_store(store_config)
    good = put(store, "good.jpg", encode(shapes_image(300, 200), "JPEG"))
    store.put("originals/bad.jpg", b"\xff\xd8\xff not really a jpeg")
    bad = {"image_id": "bad.jpg", "object_key": "originals/bad.jpg", "width": 300, "height": 200}
    missing = {"image_id": "gone", "object_key": "originals/gone", "width": 300, "height": 200}
    results = run_inline(make_stage(store_config), [bad, good, missing])
    assert results[1]["error"] is None
    assert "image" in results[0]["error"] and results[2]["error"]
    derived = [info.key for info in store.list("derived/")]
    assert derived == [results[1]["derivative_key"]]


def test_parameters_hash_covers_what_changes_the_output(store_config: StoreConfig) -> None:
    base = make_stage(store_config)
    assert (
        make_stage(store_config, BucketConfig(target="sdxl", resolution=1024)).params_hash == base.params_hash
    )
    for other in (
        make_stage(store_config, BucketConfig(target="sdxl", resolution=768)),
        make_stage(store_config, BucketConfig(target="sdxl", max_upscale=1.0)),
        make_stage(store_config, output_format="png"),
        make_stage(store_config, face_margin=0.5),
        make_stage(store_config, detector="retinaface"),
    ):
        assert other.params_hash != base.params_hash
    assert not base.stateful and make_stage(store_config, detector="retinaface").stateful
    with pytest.raises(InvalidInput, match="face detector"):
        make_stage(store_config, detector="dlib")
    with pytest.raises(InvalidInput, match="image format"):
        make_stage(store_config, output_format="gif")
    with pytest.raises(InvalidInput, match="target"):
        make_stage(store_config, BucketConfig(target="sd3"))


def test_retinaface_stage_runs_from_a_local_checkpoint(store_config: StoreConfig, tmp_path: Path) -> None:
    import torch
    from retinaface.predict_single import Model

    torch.manual_seed(0)
    with pytest.warns(UserWarning):  # torchvision's `pretrained` deprecation inside retinaface-pytorch
        model = Model(max_size=128, device="cpu")
    weights = tmp_path / "retinaface.pth"
    torch.save(model.model.state_dict(), weights)
    store = open_store(store_config)
    item = put(store, "astronaut", real_photo_paths()["astronaut"].read_bytes())
    stage = make_stage(store_config, detector="retinaface", detector_weights=str(weights), detect_side=128)
    [result] = run_inline(stage, [item])
    assert result["error"] is None
    assert decoded(store, result["derivative_key"]).size == (1024, 1024)
    assert all(len(face["landmarks"]) == 5 for face in result["faces"])


# Driver side: the catalog records of an embedded (SQLite + folder) installation.


def ingest_rows(names: list[str]) -> str:
    ctx = open_context()
    with ctx.catalog.session() as session:
        dataset = queries.get_or_create_dataset(session, "alice", target_model="sdxl")
        for name in names:
            data = real_photo_paths()[name].read_bytes()
            key = f"originals/{name}"
            ctx.store.put(key, data)
            width, height = PILImage.open(io.BytesIO(data)).size
            session.add(
                Image(
                    dataset_id=dataset.id,
                    sha256=name.ljust(64, "0"),
                    object_key=key,
                    original_filename=name,
                    source_kind="file",
                    source_uri=name,
                    width=width,
                    height=height,
                    format="png",
                    bytes=len(data),
                    status="rejected" if name == "coffee" else "pending",
                )
            )
        return dataset.id


def run_bucket(dataset_id: str, options: BucketConfig) -> tuple[BucketStage, int]:
    ctx = open_context()
    stage = BucketStage(
        store_config=ctx.store_config, max_pixels=MAX_PIXELS, dataset_id=dataset_id, options=options
    )
    with ctx.catalog.session() as session:
        items, _ = select_bucket_work(session, dataset_id, stage.params_hash)
    results = run_inline(stage, items)
    for _ in range(2):  # the second call is a retried shard: it must change nothing
        with ctx.catalog.session() as session:
            record_bucket(session, stage, results)
    with ctx.catalog.session() as session:
        make_current(session, queries.find_dataset(session, "alice"), stage, batch_size=2)
    return stage, len(items)


def report_by_name() -> dict[str, dict[str, Any]]:
    with open_context().catalog.session() as session:
        report = dataset_report(session, queries.find_dataset(session, "alice"))
    return {image["filename"]: image for image in report["images"]}


@pytest.mark.usefixtures("embedded_env")
def test_driver_records_faces_derivatives_and_report_and_resumes() -> None:
    dataset_id = ingest_rows(["astronaut", "grace_hopper", "chelsea", "coffee"])
    first, processed = run_bucket(dataset_id, BucketConfig(target="sdxl"))
    assert processed == 3  # the rejected picture is skipped
    report = report_by_name()
    astronaut = report["astronaut"]
    assert astronaut["bucket"] == "1024x1024" and astronaut["crop"] == [0, 0, 512, 512]
    assert astronaut["faces"] == 1 and astronaut["crop_reason"] == "keeps the face"
    assert report["chelsea"]["faces"] is None and report["chelsea"]["bucket"] == "1216x832"
    assert report["coffee"]["bucket"] is None

    ctx = open_context()
    with ctx.catalog.session() as session:
        assert select_bucket_work(session, dataset_id, first.params_hash) == ([], 3)
        rows = list(session.scalars(select(Derivative)))
        assert len(rows) == 3 and len(list(session.scalars(select(Face)))) == 2
        assert all(ctx.store.exists(row.object_key) for row in rows)
        overview = bucket_overview(session, queries.find_dataset(session, "alice"))
    assert overview is not None
    assert overview.images_per_bucket == {"1024x1024": 1, "1216x832": 1, "960x1088": 1}
    assert overview.underfilled == overview.images_per_bucket  # every bucket is below a batch of 2
    upscales = {entry["filename"]: entry["upscale"] for entry in overview.too_small}
    assert upscales["astronaut"] == 2.0 and all(entry["flagged"] for entry in overview.too_small)

    second, processed = run_bucket(dataset_id, BucketConfig(target="sdxl", resolution=512))
    assert processed == 3 and second.params_hash != first.params_hash
    assert report_by_name()["astronaut"]["bucket"] == "512x512"
    with ctx.catalog.session() as session:
        assert len(list(session.scalars(select(Derivative)))) == 6  # the first run's are kept
    again, processed = run_bucket(dataset_id, BucketConfig(target="sdxl"))
    assert processed == 0 and again.params_hash == first.params_hash
    assert report_by_name()["astronaut"]["bucket"] == "1024x1024"


@pytest.mark.usefixtures("embedded_env")
def test_cli_refuses_bad_options_before_any_flow_starts() -> None:
    from typer.testing import CliRunner

    from services.cli.main import app

    ingest_rows([])
    runner = CliRunner()
    for args, reason in (
        (["--face-detector", "dlib"], "--face-detector 'dlib': choose one of opencv, retinaface"),
        (["--image-format", "gif"], "--image-format 'gif': choose one of auto, jpg, png, webp"),
        (["--buckets", "10x"], "--buckets '10x': String should match pattern"),  # the schema states the rule
        (["--target", "sd3"], "--target 'sd3': choose one of sd15, sdxl, flux"),
        (["--trainer", "dreambooth"], "--trainer 'dreambooth': choose one of kohya, ai-toolkit"),
        (["--max-upscale", "0.5"], "--max-upscale 0.5: Input should be greater than or equal to 1"),
        (["--step", "many"], "--step 'many': expected a whole number"),
        (["--trainer", "onetrainer", "--step", "32"], "step shape the generic grid; with a trainer"),
    ):
        result = runner.invoke(app, ["bucket", "--dataset", "alice", *args])
        assert result.exit_code == 1, result.output
        assert reason in " ".join(result.output.split()), result.output
    missing = runner.invoke(app, ["bucket", "--dataset", "bob"])
    assert missing.exit_code == 1 and "dataset 'bob' not found" in missing.output


def test_a_trainer_gives_its_own_buckets_and_shares_derivatives_where_they_agree(
    store_config: StoreConfig,
) -> None:
    generic = make_stage(store_config, BucketConfig(target="sdxl"))
    kohya = make_stage(store_config, BucketConfig(target="sdxl", trainer="kohya"))
    onetrainer = make_stage(store_config, BucketConfig(target="sdxl", trainer="onetrainer"))
    # kohya's rule at SDXL is the model's grid: the same pictures, so the same derivatives.
    assert kohya.buckets.labels == generic.buckets.labels and kohya.params_hash == generic.params_hash
    assert "1216x832" not in onetrainer.buckets.labels and "1280x832" in onetrainer.buckets.labels
    assert onetrainer.params_hash != generic.params_hash
    flux = make_stage(store_config, BucketConfig(target="flux", trainer="ai-toolkit", resolution=768))
    assert all(b.width % 32 == 0 and b.height % 32 == 0 and b.area <= 768**2 for b in flux.buckets.buckets)
    with pytest.raises(InvalidInput, match="own rule"):
        make_stage(store_config, BucketConfig(target="sdxl", trainer="kohya", step=32))


@pytest.mark.usefixtures("embedded_env")
def test_a_trainer_run_is_remembered_for_its_exports() -> None:
    dataset_id = ingest_rows(["astronaut", "chelsea"])
    onetrainer, _ = run_bucket(dataset_id, BucketConfig(target="sdxl", trainer="onetrainer"))
    generic, _ = run_bucket(dataset_id, BucketConfig(target="sdxl", resolution=768))
    with open_context().catalog.session() as session:
        settings = queries.find_dataset(session, "alice").settings or {}
        overview = bucket_overview(session, queries.find_dataset(session, "alice"))
    # The last run is current; the OneTrainer run stays the one a OneTrainer export takes.
    assert settings["bucket_params_hash"] == generic.params_hash and settings["bucket_resolution"] == 768
    assert settings["bucket_runs"] == {
        "onetrainer/sdxl": {"params_hash": onetrainer.params_hash, "resolution": 1024}
    }
    assert overview is not None and overview.trainer is None


@pytest.mark.parametrize("trainer", ["replicate", "onetrainer", "simpletuner"])
def test_a_trainers_buckets_still_keep_the_face_in_the_crop(store_config: StoreConfig, trainer: str) -> None:
    """Replicate's trainer keeps only 1:1, 4:1 and 1:4 at 1024: the widest crops, still around the face."""
    store = open_store(store_config)
    items = [
        put(store, name, real_photo_paths()[name].read_bytes()) for name in ("astronaut", "grace_hopper")
    ]
    stage = make_stage(store_config, BucketConfig(target="flux", trainer=trainer))
    for result in run_inline(stage, items):
        assert result["error"] is None and result["bucket"] in stage.buckets.labels
        (face,) = result["faces"]
        fx0, fy0, fx1, fy1 = face["bbox"]
        x0, y0, x1, y1 = result["box"]
        assert x0 <= fx0 and y0 <= fy0 and fx1 <= x1 and fy1 <= y1, (
            trainer,
            result["image_id"],
            result["box"],
        )
