"""Bucketed for a trainer, exported for it: every picture comes out at a size that trainer's own rule keeps.

Real photos cut from 1:4 to 4:1 go through the bucket stage and the export on the embedded catalog, for
every format and model the trainer supports; each exported file is opened, and the trainer's rule (ported
from its code, loraforge.exporters.formats) must map its size to itself. The config each export writes must
declare that same rule, with absolute paths that exist.
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import select

from loraforge.catalog.models import Derivative
from loraforge.exporters.buckets import trainer_rule
from loraforge.exporters.formats.ai_toolkit import AiToolkitBuckets
from loraforge.exporters.formats.kohya import KohyaBuckets
from loraforge.exporters.formats.onetrainer import MgdsAspectBucketing
from loraforge.exporters.formats.simpletuner import SimpleTunerPixelArea
from loraforge.stages.bucket import BucketConfig
from loraforge.stages.context import Context, open_context
from loraforge.stages.options import BuildOptions
from tests.support.aspect_photos import ASPECTS
from tests.support.trainer_exports import add_dataset, bucket, export, exported_sizes

FORMATS = ("kohya", "ai-toolkit", "onetrainer", "simpletuner", "hf", "replicate")
ONLY_FLUX = {"replicate"}  # Replicate's flux-dev-lora-trainer trains nothing else


def declared_rule(fmt: str, folder: Path) -> dict[str, Any]:
    """What the written config says about the buckets, and the image folders it names."""
    if fmt == "kohya":
        (dataset,) = tomllib.loads((folder / "dataset_config.toml").read_text())["datasets"]
        keys = ("resolution", "min_bucket_reso", "max_bucket_reso", "bucket_reso_steps", "bucket_no_upscale")
        return {**{key: dataset[key] for key in keys}, "dirs": [s["image_dir"] for s in dataset["subsets"]]}
    if fmt == "ai-toolkit":
        (process,) = yaml.safe_load((folder / "config.yaml").read_text())["config"]["process"]
        (dataset,) = process["datasets"]
        return {"resolution": dataset["resolution"], "dirs": [dataset["folder_path"]]}
    if fmt == "onetrainer":
        (concept,) = json.loads((folder / "concepts.json").read_text())
        return {**concept["image"], "dirs": [concept["path"]]}
    if fmt == "simpletuner":
        config = json.loads((folder / "config.json").read_text())
        backends = json.loads(Path(config["data_backend_config"]).read_text())
        return {**config, "dirs": [b["instance_data_dir"] for b in backends if b["dataset_type"] == "image"]}
    return {"dirs": []}  # hf and replicate write no bucket settings


@pytest.mark.usefixtures("embedded_env")
@pytest.mark.parametrize("model", ["sd15", "sdxl", "flux"])
def test_every_exported_picture_is_a_size_its_trainer_keeps(model: str, tmp_path: Path) -> None:
    ctx = open_context()
    dataset_id = add_dataset(ctx, model)
    rendered: dict[str, str] = {}
    for fmt in FORMATS:
        if fmt in ONLY_FLUX and model != "flux":
            continue
        stage, processed = bucket(ctx, dataset_id, BucketConfig(target=model, trainer=fmt))
        # Derivatives are keyed by what changes the pictures: a trainer whose buckets another one already
        # rendered (hf takes kohya's grid) renders nothing new.
        assert processed == (0 if stage.params_hash in rendered.values() else len(ASPECTS))
        rendered[fmt] = stage.params_hash
        folder = tmp_path / f"{model}-{fmt}"
        outcome = export(ctx, dataset_id, fmt, folder)
        assert not [line for line in outcome.warnings if "rebucketed" in line]

        rule = trainer_rule(fmt, model)
        sizes = exported_sizes(folder)
        assert len(sizes) == len(ASPECTS) == outcome.image_count
        moved = {size: rule.place(*size) for size in sizes if not rule.place(*size).keeps(*size)}
        assert not moved, f"{fmt}/{model}: {rule.name} would resize or crop {moved}"
        assert {f"{w}x{h}" for w, h in sizes} <= set(rule.buckets().labels)

        declared = declared_rule(fmt, folder)
        for path in declared.pop("dirs"):
            assert Path(path).is_absolute() and Path(path).is_dir(), path  # launchable from anywhere
        if isinstance(rule, KohyaBuckets):
            assert declared == {
                "resolution": rule.resolution,
                "min_bucket_reso": rule.min_reso,
                "max_bucket_reso": rule.max_reso,
                "bucket_reso_steps": rule.step,
                "bucket_no_upscale": False,
            }
        elif isinstance(rule, AiToolkitBuckets):
            assert declared["resolution"] == [rule.resolution]
        elif isinstance(rule, MgdsAspectBucketing):
            assert declared["enable_resolution_override"] is True
            assert declared["resolution_override"] == str(rule.resolution)
        elif isinstance(rule, SimpleTunerPixelArea):
            assert (declared["resolution"], declared["resolution_type"]) == (rule.resolution, "pixel_area")
            assert declared["aspect_bucket_alignment"] == rule.alignment
            assert declared["aspect_bucket_rounding"] == rule.rounding
    if model != "flux":
        assert rendered["hf"] == rendered["kohya"]


@pytest.mark.usefixtures("embedded_env")
def test_an_export_takes_its_trainers_derivatives_and_flags_anothers(tmp_path: Path) -> None:
    ctx = open_context()
    dataset_id = add_dataset(ctx, "sdxl")
    bucket(ctx, dataset_id, BucketConfig(target="sdxl", trainer="kohya"))
    ai_toolkit, _ = bucket(ctx, dataset_id, BucketConfig(target="sdxl", trainer="ai-toolkit"))
    # The last run is ai-toolkit's, yet a kohya export takes the kohya run's pictures.
    kohya = export(ctx, dataset_id, "kohya", tmp_path / "kohya")
    assert not [line for line in kohya.warnings if "rebucketed" in line]
    rule = trainer_rule("kohya", "sdxl")
    assert all(rule.place(*size).keeps(*size) for size in exported_sizes(tmp_path / "kohya"))
    # OneTrainer has no run: it gets the current (ai-toolkit's) pictures, and every one its rule would
    # still move is named, with the command that fixes it.
    onetrainer = export(ctx, dataset_id, "onetrainer", None)
    rebucketed = [line for line in onetrainer.warnings if "rebucketed" in line]
    ot_rule = trainer_rule("onetrainer", "sdxl")
    sizes = sizes_of_run(ctx, ai_toolkit.params_hash)
    moved = [size for size in sizes if not ot_rule.place(*size).keeps(*size)]
    assert len(sizes) == len(ASPECTS) and moved and len(rebucketed) == len(moved)
    assert all("loraforge bucket --trainer onetrainer" in line for line in rebucketed)


def sizes_of_run(ctx: Context, params_hash: str) -> list[tuple[int, int]]:
    with ctx.catalog.session() as session:
        query = select(Derivative.width, Derivative.height).where(Derivative.params_hash == params_hash)
        return [(width, height) for width, height in session.execute(query)]


def test_loraforge_run_buckets_for_the_format_it_exports() -> None:
    for fmt in FORMATS:
        options = BuildOptions(sources=["photos"], format=fmt)  # type: ignore[arg-type]
        assert options.bucket().trainer == fmt == options.export().format
