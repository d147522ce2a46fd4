"""Real photos shipped inside installed packages, and small synthetic pictures, for the imaging tests."""

from __future__ import annotations

import os
from functools import lru_cache

import matplotlib
import skimage
from PIL import Image


def astronaut() -> Image.Image:
    return Image.open(os.path.join(os.path.dirname(skimage.__file__), "data", "astronaut.png")).convert("RGB")


def grace_hopper() -> Image.Image:
    path = os.path.join(matplotlib.get_data_path(), "sample_data", "grace_hopper.jpg")
    return Image.open(path).convert("RGB")


def on_canvas(photo: Image.Image, size: tuple[int, int], at: tuple[int, int]) -> Image.Image:
    """The photo pasted onto a flat grey canvas, so its face ends up far from the centre."""
    canvas = Image.new("RGB", size, (128, 128, 128))
    canvas.paste(photo, at)
    return canvas


def face_photos() -> dict[str, Image.Image]:
    """Whole photos and off-centre versions of them that still show the whole face."""
    astro, grace = astronaut(), grace_hopper()
    return {
        "astronaut": astro,
        "astronaut_left70": astro.crop((0, 0, 358, 512)),
        "astronaut_right70": astro.crop((154, 0, 512, 512)),
        "astronaut_top60": astro.crop((0, 0, 512, 307)),
        "astronaut_wide_canvas": on_canvas(astro, (1600, 700), (1050, 150)),
        "astronaut_tall_canvas": on_canvas(astro, (600, 1500), (60, 950)),
        "grace_hopper": grace,
        "grace_hopper_right70": grace.crop((153, 0, 512, 600)),
        "grace_hopper_top60": grace.crop((0, 0, 512, 360)),
        "grace_hopper_wide_canvas": on_canvas(grace, (1800, 700), (40, 60)),
    }


@lru_cache(maxsize=1)
def opencv_detector():  # noqa: ANN201 - the protocol type lives in the module under test
    from loraforge.models.faces import build_face_detector

    return build_face_detector("opencv")
