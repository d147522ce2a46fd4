"""Face photos for the identity tests and bench: shipped portraits, augmented, and a two-person picture."""

from __future__ import annotations

from collections.abc import Callable

from PIL import Image, ImageEnhance, ImageOps

from tests.support.images import real_photo

Augment = Callable[[Image.Image], Image.Image]


def _crop(image: Image.Image) -> Image.Image:
    w, h = image.size
    return image.crop((round(w * 0.08), round(h * 0.04), round(w * 0.94), round(h * 0.9)))


def _rotate(degrees: float) -> Augment:
    return lambda image: image.rotate(degrees, resample=Image.Resampling.BICUBIC, fillcolor=(128, 128, 128))


def _resize(factor: float) -> Augment:
    return lambda image: image.resize(
        (round(image.width * factor), round(image.height * factor)), Image.Resampling.LANCZOS
    )


AUGMENTATIONS: dict[str, Augment] = {
    "original": lambda image: image,
    "flip": ImageOps.mirror,
    "crop": _crop,
    "brighter": lambda image: ImageEnhance.Brightness(image).enhance(1.35),
    "darker": lambda image: ImageEnhance.Brightness(image).enhance(0.7),
    "contrast": lambda image: ImageEnhance.Contrast(image).enhance(1.4),
    "rotate_+8": _rotate(8),
    "rotate_-8": _rotate(-8),
    "half_size": _resize(0.5),
    "double_size": _resize(2.0),
    "grayscale": lambda image: ImageOps.grayscale(image).convert("RGB"),
    "flip_crop_darker": lambda image: ImageEnhance.Brightness(_crop(ImageOps.mirror(image))).enhance(0.75),
}
"""The changes a scraped copy of a photo goes through: mirrored, cropped, re-exposed, turned, resized."""


def portrait(name: str) -> Image.Image:
    """grace_hopper (matplotlib's sample) or astronaut (scikit-image's: Eileen Collins)."""
    image = real_photo(name)
    if name == "astronaut":
        # Her head only: lower down, the mission patch on the suit also passes for a face to dlib's HOG.
        image = image.crop((96, 0, 352, 256))
    return image


def two_people(left: str = "astronaut", right: str = "grace_hopper") -> tuple[Image.Image, int]:
    """Two portraits side by side on one canvas, and the x where the right one starts."""
    a, b = portrait(left), portrait(right)
    height = 400
    a = a.resize((round(a.width * height / a.height), height), Image.Resampling.LANCZOS)
    b = b.resize((round(b.width * height / b.height), height), Image.Resampling.LANCZOS)
    canvas = Image.new("RGB", (a.width + b.width, height), (40, 40, 40))
    canvas.paste(a, (0, 0))
    canvas.paste(b, (a.width, 0))
    return canvas, a.width
