"""Metric maths on synthetic and real pictures: each metric moves the right way for its defect."""

from __future__ import annotations

import numpy as np
from PIL import Image

from loraforge.curation import metrics

from .curation_factories import blurred, flat, gain, photo, textured


def grey(image) -> np.ndarray:
    return np.asarray(image.convert("L"), dtype=np.float32)


def test_blur_lowers_tile_sharpness_by_far() -> None:
    sharp = photo()
    assert metrics.tile_sharpness(grey(blurred(sharp, 4))) < metrics.tile_sharpness(grey(sharp)) / 5


def test_tile_sharpness_passes_a_sharp_subject_on_a_blurred_background() -> None:
    sharp = textured((256, 256))
    background = np.asarray(blurred(sharp, 6)).copy()
    background[96:160, 96:160] = np.asarray(sharp)[96:160, 96:160]
    portrait = grey(Image.fromarray(background))
    everywhere_blurred = grey(blurred(sharp, 6))
    assert metrics.tile_sharpness(portrait) > 5 * metrics.tile_sharpness(everywhere_blurred)
    # The global variance is what would wrongly call the portrait blurry: it is diluted by the background.
    assert metrics.laplacian_variance(portrait) < metrics.laplacian_variance(grey(sharp)) / 3


def test_tile_sharpness_does_not_depend_much_on_contrast() -> None:
    sharp = photo()
    low_contrast = grey(sharp) * 0.3 + 90
    assert metrics.tile_sharpness(low_contrast) > metrics.tile_sharpness(grey(blurred(sharp, 4)))


def test_exposure_percentiles_follow_brightness() -> None:
    image = photo()
    normal = metrics.exposure(np.asarray(image.convert("L")), metrics.max_channel(np.asarray(image)))
    dark_image = gain(image, 0.2)
    dark = metrics.exposure(np.asarray(dark_image.convert("L")), metrics.max_channel(np.asarray(dark_image)))
    assert dark.luma[99] < normal.luma[99] * 0.3
    assert dark.value[50] < normal.value[50]


def test_histogram_percentile_is_exact_on_levels() -> None:
    values = np.arange(256, dtype=np.uint8).repeat(4)
    hist = np.bincount(values, minlength=256)
    assert metrics.histogram_percentile(hist, 50) == 127
    assert metrics.histogram_percentile(hist, 99) == 253


def test_value_sees_a_burnt_out_red_channel_that_luma_misses() -> None:
    red = np.zeros((32, 32, 3), dtype=np.uint8)
    red[..., 0] = 255
    red[..., 1] = 60
    exposure = metrics.exposure(metrics.luminance(red), metrics.max_channel(red))
    assert exposure.value[50] == 255
    assert exposure.luma[50] < 120


def test_information_separates_a_noisy_flat_picture_from_a_photo() -> None:
    tiny_flat = np.asarray(flat(noise=6.0).resize((64, 64), resample=4))
    tiny_photo = np.asarray(photo().resize((64, 43), resample=4))
    flat_info, photo_info = metrics.information(tiny_flat), metrics.information(tiny_photo)
    assert flat_info.contrast + 2 * flat_info.detail < 6
    assert photo_info.contrast + 2 * photo_info.detail > 30


def test_colourfulness_is_zero_for_grey_saved_as_rgb() -> None:
    image = photo()
    grey_rgb = np.asarray(image.convert("L").convert("RGB"))
    assert metrics.colourfulness(grey_rgb).chroma_p95 == 0
    assert metrics.colourfulness(np.asarray(image)).chroma_p95 > 40
