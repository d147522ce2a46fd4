"""Bucket generation per target and the choose_bucket rule."""

from __future__ import annotations

import random

import pytest

from loraforge.errors import InvalidInput
from loraforge.imaging.buckets import (
    Bucket,
    BucketChoice,
    bucket_set,
    bucket_summary,
    choose_bucket,
    kohya_buckets,
    parse_bucket_list,
    targets,
    upscale_needed,
)

SDXL_LANDSCAPE = (
    "1024x1024 1088x960 1152x896 1216x832 1280x768 1344x768 1408x704 1472x704 1536x640 1600x640 1664x576 "
    "1728x576 1792x576 1856x512 1920x512 1984x512 2048x512"
).split()


def test_sdxl_kohya_generator_gives_the_41_buckets_formats_lists() -> None:
    buckets = kohya_buckets(1024, 256, 2048, 64)
    labels = {b.label for b in buckets}
    assert len(buckets) == 41
    assert set(SDXL_LANDSCAPE) <= labels
    assert {f"{b.height}x{b.width}" for b in buckets} == labels  # closed under transpose


def test_sd15_kohya_generator_gives_17_buckets() -> None:
    buckets = kohya_buckets(512, 256, 1024, 64)
    assert len(buckets) == 17
    assert Bucket(512, 512) in buckets and Bucket(1024, 256) in buckets and Bucket(256, 1024) in buckets
    assert all(256 <= side <= 1024 for b in buckets for side in (b.width, b.height))


@pytest.mark.parametrize("target", ["sd15", "sdxl", "flux"])
def test_named_sets_have_sides_on_their_step_and_about_the_target_area(target: str) -> None:
    buckets = bucket_set(target)
    resolution = {"sd15": 512, "sdxl": 1024, "flux": 1024}[target]
    assert targets() == ["flux", "sd15", "sdxl"]
    assert all(b.width % buckets.step == 0 and b.height % buckets.step == 0 for b in buckets.buckets)
    assert all(b.area <= resolution**2 for b in buckets.buckets)
    assert Bucket(resolution, resolution) in buckets.buckets
    assert buckets.step in (16, 32, 64)


def test_resolution_override_scales_the_set() -> None:
    small = bucket_set("sdxl", resolution=768)
    assert Bucket(768, 768) in small.buckets
    assert max(b.area for b in small.buckets) == 768 * 768


def test_user_list_is_parsed_and_bad_entries_are_refused() -> None:
    buckets = parse_bucket_list("1024x1024, 1152x896;896x1152")
    assert buckets.labels == ["896x1152", "1024x1024", "1152x896"]
    assert buckets.step == 128
    with pytest.raises(InvalidInput):
        parse_bucket_list("1024by1024")
    with pytest.raises(InvalidInput):
        bucket_set("sd3")


def test_choose_bucket_takes_the_closest_aspect_ratio() -> None:
    choice = choose_bucket(3000, 2000, bucket_set("sdxl"), max_upscale=1.0)
    assert choice.bucket == Bucket(1216, 832)  # 1.5 vs 1.4615; 1280x768 is 1.667
    assert not choice.flagged_too_small
    assert choice.upscale_factor == pytest.approx(max(1216 / 3000, 832 / 2000))


def test_choose_bucket_drops_to_a_lower_resolution_of_the_same_aspect_before_upscaling() -> None:
    buckets = parse_bucket_list("512x512,768x768,1024x1024")
    assert choose_bucket(800, 800, buckets, max_upscale=1.0).bucket == Bucket(768, 768)
    assert choose_bucket(800, 800, buckets, max_upscale=1.3).bucket == Bucket(1024, 1024)
    tiny = choose_bucket(300, 300, buckets, max_upscale=1.0)
    assert tiny.flagged_too_small and tiny.bucket == Bucket(512, 512)
    assert tiny.upscale_factor == pytest.approx(512 / 300)


def test_choose_bucket_respects_max_upscale_on_random_sizes() -> None:
    rng = random.Random(7)
    for _ in range(300):
        target = rng.choice(["sd15", "sdxl", "flux"])
        width, height = rng.randint(64, 5000), rng.randint(64, 5000)
        max_upscale = rng.choice([1.0, 1.25, 2.0])
        buckets = bucket_set(target)
        choice = choose_bucket(width, height, buckets, max_upscale=max_upscale)
        assert choice.bucket in buckets.buckets
        assert choice.upscale_factor == pytest.approx(upscale_needed(width, height, choice.bucket))
        assert choice.flagged_too_small == (choice.upscale_factor > max_upscale + 1e-9)


def test_bucket_summary_counts_flags_and_underfilled_buckets() -> None:
    square, wide = Bucket(1024, 1024), Bucket(1216, 832)
    choices = {
        "a": BucketChoice(square, 0.5, False),
        "b": BucketChoice(square, 0.7, False),
        "c": BucketChoice(square, 2.5, True),
        "d": BucketChoice(wide, 0.4, False),
    }
    summary = bucket_summary(choices, batch_size=2)
    assert summary.images_per_bucket == {"1024x1024": 3, "1216x832": 1}
    assert summary.too_small == {"c": 2.5}
    assert summary.underfilled == {"1216x832": 1}
    assert bucket_summary(list(choices.values()), batch_size=1).too_small == {2: 2.5}
