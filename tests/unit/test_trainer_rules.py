"""Oracles for the trainers' bucket rules ported in loraforge/exporters/formats: each ported function is run
on cases taken from the trainer itself (its own tests and docs, or its loading code run on the size).

"Measured" cases come from running the trainer's own function on the size: sd-scripts at 48d368f
(BucketManager.select_bucket), mgds at 3a6994a (AspectBucketing), SimpleTuner at bc8e6ab
(TrainingSample.calculate_target_size), ai-toolkit at 27a03a9 and at bedb819, the commit Replicate's trainer
pins (get_bucket_for_image_size). The sizes the issue reports from the trainers' loaders are among them.
"""

from __future__ import annotations

import random

import pytest

from loraforge.errors import InvalidInput
from loraforge.exporters import ExportSpec
from loraforge.exporters.buckets import AnySize, rule_for, trainer_rule
from loraforge.exporters.formats.ai_toolkit import AiToolkitBuckets
from loraforge.exporters.formats.kohya import KohyaBuckets
from loraforge.exporters.formats.onetrainer import MgdsAspectBucketing
from loraforge.exporters.formats.replicate import PinnedAiToolkitBuckets
from loraforge.exporters.formats.simpletuner import SimpleTunerPixelArea
from loraforge.imaging.buckets import Placement

# --- kohya sd-scripts: library/train_util.py BucketManager, library/model_util.py make_bucket_resolutions

SDXL_LANDSCAPE = (
    "1024x1024 1088x960 1152x896 1216x832 1280x768 1344x768 1408x704 1472x704 1536x640 1600x640 1664x576 "
    "1728x576 1792x576 1856x512 1920x512 1984x512 2048x512"
).split()
"""kohya's 41 SDXL buckets at 1024 / 256-2048 / step 64: the landscape half (the rest are transposes)."""


def test_kohya_generator_gives_the_documented_sets() -> None:
    sdxl = KohyaBuckets(1024, 256, 2048, 64).buckets().labels
    assert len(sdxl) == 41 and set(SDXL_LANDSCAPE) <= set(sdxl)
    assert len(KohyaBuckets(512, 256, 1024, 64).buckets().labels) == 17


@pytest.mark.parametrize(
    ("rule", "size", "bucket", "resized"),
    [
        # Measured: nearest aspect ratio, scaled to cover, then cropped.
        (KohyaBuckets(1024, 256, 2048, 64), (1920, 1080), (1344, 768), (1365, 768)),
        (KohyaBuckets(1024, 256, 2048, 64), (3000, 2000), (1216, 832), (1248, 832)),
        (KohyaBuckets(1024, 256, 2048, 64), (570, 2280), (512, 2048), (512, 2048)),
        (KohyaBuckets(512, 256, 1024, 64), (3000, 2000), (640, 384), (640, 427)),
        # The issue, from sd-scripts' loader: a 64-grid size under bucket_reso_steps = 32 moves.
        (KohyaBuckets(1024, 256, 2048, 32), (640, 1536), (640, 1568), (653, 1568)),
        # Measured, bucket_no_upscale: shrunk to resolution² if larger, then cut down to the step.
        (KohyaBuckets(1024, 256, 2048, 64, no_upscale=True), (3000, 2000), (1216, 832), (1248, 832)),
        (KohyaBuckets(1024, 256, 2048, 64, no_upscale=True), (800, 600), (768, 576), (800, 600)),
    ],
)
def test_kohya_select_bucket(
    rule: KohyaBuckets, size: tuple[int, int], bucket: tuple[int, int], resized: tuple[int, int]
) -> None:
    assert rule.place(*size) == Placement(bucket, resized)


def test_kohya_steps_are_the_ones_each_script_accepts() -> None:
    """train_network.py and flux_train_network.py check bucket_reso_steps % 64, sdxl_train_network.py % 32;
    sd-scripts refuses to start otherwise ("bucket_reso_steps is 32. it must be divisible by 64")."""
    for model in ("sd15", "sdxl", "flux"):
        rule = trainer_rule("kohya", model)
        assert isinstance(rule, KohyaBuckets) and rule.step == 64
    with pytest.raises(InvalidInput, match="flux_train_network.py .* multiple of 64"):
        rule_for(ExportSpec(format="kohya", target_model="flux", bucket_step=32))
    with pytest.raises(InvalidInput, match="train_network.py .* multiple of 64"):
        rule_for(ExportSpec(format="kohya", target_model="sd15", bucket_step=32))
    assert rule_for(ExportSpec(format="kohya", target_model="sdxl", bucket_step=32)).buckets().step == 32


# --- OneTrainer: mgds src/mgds/pipelineModules/AspectBucketing.py, quantisation from OneTrainer's loaders


def test_mgds_aspect_set_is_snapped_to_the_models_quantisation() -> None:
    """The set FORMATS notes list for SDXL and Flux (quantisation 64), and SD 1.5's at quantisation 8."""
    for model in ("sdxl", "flux"):
        landscape = [b for b in trainer_rule("onetrainer", model).buckets().buckets if b.width >= b.height]
        assert [b.label for b in sorted(landscape, key=lambda b: b.width)] == [
            "1024x1024", "1152x896", "1280x832", "1344x768", "1472x704", "1600x640", "1792x576", "1920x576",
            "2048x512",
        ]  # fmt: skip
    sd15 = [b for b in trainer_rule("onetrainer", "sd15").buckets().buckets if b.width >= b.height]
    assert [b.label for b in sorted(sd15, key=lambda b: b.width)] == [
        "512x512", "576x456", "624x416", "680x384", "728x360", "808x320", "888x296", "960x272", "1024x256",
    ]  # fmt: skip


def test_mgds_moves_an_sdxl_bucket_that_is_not_in_its_set() -> None:
    """The issue, from OneTrainer's loader: 1216x832 is scaled to 1280x876 and cropped by 44 px."""
    rule = MgdsAspectBucketing(1024, 64)
    assert rule.place(1216, 832) == Placement((1280, 832), (1280, 876))
    assert rule.place(1280, 832).keeps(1280, 832)


# --- SimpleTuner: helpers/multiaspect/image.py, helpers/image_manipulation/training_sample.py


def test_simpletuner_cases_from_its_own_tests() -> None:
    """tests/test_image.py: test_calculate_new_size_by_pixel_area_uniformity and _squares (1.0 megapixel,
    alignment 64, rounding 2); tests/test_dataset_scan_stubs.py: pixel_area 1024 is 1.048576 megapixels."""
    one_megapixel = SimpleTunerPixelArea(1000)
    for width, height in ((3911, 5476), (4539, 6527), (832, 1216)):
        target, _ = one_megapixel.new_size_by_pixel_area(round(width / height, 2), (width, height))
        assert target == (832, 1216)
    for side in (4000, 2000):
        assert one_megapixel.new_size_by_pixel_area(1.0, (side, side))[0] == (1024, 1024)
    assert SimpleTunerPixelArea(1024).megapixels == pytest.approx(1.048576)


def test_simpletuner_intermediary_covers_the_target_as_its_tests_require() -> None:
    """tests/test_image.py test_calculate_new_size_by_pixel_area: for random sizes the intermediary size is
    at least the target and keeps the original's rounded aspect ratio within 0.025."""
    rng = random.Random(0)
    for megapixels_edge in (1000, 707):  # 1.0 and 0.5 megapixels
        rule = SimpleTunerPixelArea(megapixels_edge)
        for _ in range(100):
            width, height = rng.randint(512, 2500), rng.randint(512, 2500)
            target, inter = rule.new_size_by_pixel_area(round(width / height, 2), (width, height))
            assert inter[0] >= target[0] and inter[1] >= target[1]
            assert round(inter[0] / inter[1], 2) == pytest.approx(round(width / height, 2), abs=0.025)


@pytest.mark.parametrize(
    ("resolution", "size", "bucket", "resized"),
    [
        # The issue, from SimpleTuner's loader: the aspect rounds to 0.42 and the sides to 64.
        (1024, (640, 1536), (640, 1600), (666, 1600)),
        (1024, (1248, 832), (1280, 832), (1280, 853)),
        # Measured.
        (512, (3000, 2000), (640, 448), (672, 448)),
        (1024, (570, 2280), (512, 2048), (512, 2048)),
        (1024, (1141, 1140), (1024, 1024), (1024, 1024)),  # aspect 1.0 after rounding: the square
    ],
)
def test_simpletuner_target_size(
    resolution: int, size: tuple[int, int], bucket: tuple[int, int], resized: tuple[int, int]
) -> None:
    assert SimpleTunerPixelArea(resolution).place(*size) == Placement(bucket, resized)


# --- ai-toolkit: toolkit/buckets.py get_bucket_for_image_size, toolkit/dataloader_mixins.py setup_buckets


def test_ai_toolkit_divisibility_is_the_models() -> None:
    """StableDiffusion.get_bucket_divisibility: 16 for SD 1.5 and SDXL (4-block VAE), 32 for Flux."""
    divisibility = {}
    for model in ("sd15", "sdxl", "flux"):
        rule = trainer_rule("ai-toolkit", model)
        assert isinstance(rule, AiToolkitBuckets)
        divisibility[model] = rule.divisibility
    assert divisibility == {"sd15": 16, "sdxl": 16, "flux": 32}


@pytest.mark.parametrize(
    ("rule", "size", "bucket"),
    [
        # Measured: the area is kept up to resolution², sides on the divisibility, never enlarged past it.
        (AiToolkitBuckets(1024, 16, 256, 2048), (3000, 2000), (1248, 832)),
        (AiToolkitBuckets(1024, 32, 256, 2048), (3000, 2000), (1248, 832)),
        (AiToolkitBuckets(1024, 32, 256, 2048), (800, 600), (800, 608)),
        (AiToolkitBuckets(1024, 32, 256, 2048), (1216, 832), (1216, 832)),
    ],
)
def test_ai_toolkit_bucket_of(rule: AiToolkitBuckets, size: tuple[int, int], bucket: tuple[int, int]) -> None:
    assert rule.bucket_of(*size) == bucket


def test_ai_toolkit_keeps_every_size_on_its_grid_within_the_area() -> None:
    rule = AiToolkitBuckets(1024, 32, 256, 2048)
    assert rule.place(1216, 832).keeps(1216, 832) and rule.place(2048, 512).keeps(2048, 512)
    assert not rule.place(1216, 848).keeps(1216, 848)  # 848 is off the 32 grid
    assert not rule.place(1280, 832).keeps(1280, 832)  # more pixels than 1024²


# --- Replicate flux-dev-lora-trainer: ai-toolkit pinned at bedb819 (toolkit/buckets.py)


@pytest.mark.parametrize(
    ("size", "bucket"),
    [
        # The issue, from the trainer's pinned loader: its list is scaled to the picture's own pixel count.
        ((1216, 832), (1152, 768)),
        ((928, 1120), (832, 1024)),
        # Measured.
        ((3000, 2000), (1216, 832)),
        ((1536, 640), (1472, 576)),
        ((1024, 1024), (1024, 1024)),
        ((2048, 512), (2048, 512)),
    ],
)
def test_replicate_pinned_bucket_of(size: tuple[int, int], bucket: tuple[int, int]) -> None:
    assert PinnedAiToolkitBuckets(1024, 256, 2048).bucket_of(*size) == bucket


def test_replicate_keeps_only_three_sizes_at_1024() -> None:
    assert trainer_rule("replicate", "flux").buckets().labels == ["512x2048", "1024x1024", "2048x512"]
    assert PinnedAiToolkitBuckets(1024, 256, 2048).place(1216, 832) == Placement((1152, 768), (1152, 789))


# --- HF ImageFolder: no buckets


def test_hf_keeps_any_size_and_offers_the_models_grid() -> None:
    rule = trainer_rule("hf", "sdxl")
    assert isinstance(rule, AnySize)
    assert all(rule.place(w, h).keeps(w, h) for w, h in ((1, 1), (333, 1999), (4000, 3000)))
    assert rule.buckets().labels == trainer_rule("kohya", "sdxl").buckets().labels


# --- every rule: the sizes the bucket stage renders are the sizes the trainer keeps


@pytest.mark.parametrize("fmt", ["kohya", "ai-toolkit", "onetrainer", "simpletuner", "hf", "replicate"])
@pytest.mark.parametrize("model", ["sd15", "sdxl", "flux"])
def test_the_stages_buckets_are_fixed_points_covering_1_4_to_4_1(fmt: str, model: str) -> None:
    rule = trainer_rule(fmt, model)
    buckets = rule.buckets().buckets
    assert all(rule.place(b.width, b.height).keeps(b.width, b.height) for b in buckets)
    aspects = [b.aspect for b in buckets]
    assert min(aspects) <= 1 / 3 and max(aspects) >= 3 and 1.0 in aspects
