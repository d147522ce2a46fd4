"""Small factories of synthetic and real test pictures for the curation tests."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageFilter


def photo(size: tuple[int, int] = (384, 256), *, seed: int = 0) -> Image.Image:
    """A real photo (scikit-image's astronaut, cropped at a seed-chosen place), RGB."""
    from skimage import data

    rng = np.random.default_rng(seed)
    full = data.astronaut()
    w, h = size
    y = int(rng.integers(0, full.shape[0] - h + 1))
    x = int(rng.integers(0, full.shape[1] - w + 1))
    return Image.fromarray(full[y : y + h, x : x + w])


def textured(size: tuple[int, int] = (256, 256), *, seed: int = 0) -> Image.Image:
    """Random blocks of colour with sharp edges: lots of detail, full colour."""
    rng = np.random.default_rng(seed)
    blocks = rng.integers(0, 256, size=(size[1] // 16, size[0] // 16, 3), dtype=np.uint8)
    return Image.fromarray(blocks).resize(size, Image.Resampling.NEAREST)


def flat(
    size: tuple[int, int] = (256, 256),
    *,
    colour: tuple[int, int, int] = (120, 130, 140),
    noise: float = 3.0,
    seed: int = 0,
) -> Image.Image:
    rng = np.random.default_rng(seed)
    arr = np.asarray(colour, dtype=np.float32) + rng.normal(0, noise, size=(size[1], size[0], 3))
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))


def blurred(image: Image.Image, radius: float) -> Image.Image:
    return image.filter(ImageFilter.GaussianBlur(radius))


def gain(image: Image.Image, factor: float) -> Image.Image:
    return Image.fromarray(np.clip(np.asarray(image, dtype=np.float32) * factor, 0, 255).astype(np.uint8))


def encode(image: Image.Image, fmt: str = "PNG", **params: object) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **params)
    return out.getvalue()
