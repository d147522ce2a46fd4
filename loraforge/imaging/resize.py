"""Render a crop box to exactly a bucket's size in sRGB, and encode the result for storage or export."""

from __future__ import annotations

import io
import logging
import math
from typing import Any

from PIL import Image, ImageCms

from loraforge.errors import InvalidInput
from loraforge.imaging.buckets import Bucket
from loraforge.imaging.decode import decode, exif_orientation, image_facts, open_checked

logger = logging.getLogger(__name__)

Box = tuple[int, int, int, int]
# Pillow's reduce() by an integer factor first, then LANCZOS over the last >= 3x: visually the same as a
# full LANCZOS (Pillow's documentation) at a fraction of the cost for big downscales.
DEFAULT_REDUCING_GAP = 3.0
_RESIZABLE_MODES = {"RGB", "L", "CMYK"}
_TRANSPOSING_ORIENTATIONS = {5, 6, 7, 8}
_ENCODERS: dict[str, dict[str, Any]] = {
    "jpeg": {"format": "JPEG", "subsampling": 0},
    "png": {"format": "PNG", "compress_level": 6},
    # Lossy WebP at the JPEG quality: about 30% smaller than JPEG for the same look; method 4 is
    # Pillow's default speed/size balance.
    "webp": {"format": "WEBP", "method": 4},
}


def render_crop(
    image: Image.Image,
    box: Box | tuple[float, float, float, float],
    bucket: Bucket,
    *,
    reducing_gap: float | None = DEFAULT_REDUCING_GAP,
) -> Image.Image:
    """The box of `image` resized to exactly bucket.width x bucket.height, RGB, sRGB."""
    x0, y0, x1, y1 = box
    if not (0 <= x0 < x1 <= image.width + 1e-6 and 0 <= y0 < y1 <= image.height + 1e-6):
        raise InvalidInput(f"crop box {box} lies outside the {image.width}x{image.height} picture")
    icc = image.info.get("icc_profile")
    working = image if image.mode in _RESIZABLE_MODES else _flatten_to_rgb(image)
    resized = working.resize(
        (bucket.width, bucket.height),
        Image.Resampling.LANCZOS,
        box=(float(x0), float(y0), float(x1), float(y1)),
        reducing_gap=reducing_gap,
    )
    # Colour conversion is per pixel, so doing it on the small result costs a fraction of the full picture.
    if icc:
        resized = to_srgb(resized, icc)
    return resized if resized.mode == "RGB" else resized.convert("RGB")


def render_crop_from_bytes(
    data: bytes,
    box: Box,
    bucket: Bucket,
    *,
    max_pixels: int,
    reducing_gap: float | None = DEFAULT_REDUCING_GAP,
) -> Image.Image:
    """Decode only as much of a JPEG as the crop needs (draft at 1/2, 1/4, 1/8), then render_crop.

    `box` is in the full picture's coordinates after EXIF orientation, as crop_box returns it.
    """
    opened = open_checked(data, max_pixels=max_pixels)
    facts = image_facts(opened)
    box_w, box_h = box[2] - box[0], box[3] - box[1]
    scale = min(1.0, max(bucket.width / box_w, bucket.height / box_h))
    wanted = (math.ceil(facts.width * scale), math.ceil(facts.height * scale))
    if exif_orientation(opened) in _TRANSPOSING_ORIENTATIONS:
        wanted = (wanted[1], wanted[0])  # draft() works on the stored, unrotated frame
    image = decode(opened, draft_size=wanted if scale < 1.0 else None)
    fx, fy = image.width / facts.width, image.height / facts.height
    scaled = (box[0] * fx, box[1] * fy, min(image.width, box[2] * fx), min(image.height, box[3] * fy))
    return render_crop(image, scaled, bucket, reducing_gap=reducing_gap)


def to_srgb(image: Image.Image, icc_profile: bytes) -> Image.Image:
    """Convert from the embedded ICC profile to sRGB; an unusable profile leaves the pixels as they are."""
    try:
        source = ImageCms.ImageCmsProfile(io.BytesIO(icc_profile))
        target = ImageCms.createProfile("sRGB")
        converted = ImageCms.profileToProfile(
            image, source, target, renderingIntent=ImageCms.Intent.PERCEPTUAL, outputMode="RGB"
        )
    except (ImageCms.PyCMSError, OSError, ValueError) as exc:
        logger.debug("ICC profile ignored (%s); pixels kept as they are", exc)
        return image
    assert converted is not None
    converted.info.pop("icc_profile", None)
    return converted


def encode(image: Image.Image, fmt: str = "jpeg", quality: int = 95) -> bytes:
    """JPEG (4:4:4 chroma, given quality), PNG or WebP (given quality) bytes of an RGB image."""
    try:
        options = dict(_ENCODERS[fmt.lower()])
    except KeyError:
        raise InvalidInput(f"unknown output format {fmt!r}; choose one of {', '.join(_ENCODERS)}") from None
    if options["format"] in ("JPEG", "WEBP"):
        options["quality"] = quality
    buffer = io.BytesIO()
    image.save(buffer, **options)
    return buffer.getvalue()


def _flatten_to_rgb(image: Image.Image) -> Image.Image:
    if image.mode in ("RGBA", "LA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGB", rgba.size, (255, 255, 255))
        background.paste(rgba, mask=rgba.getchannel("A"))
        background.info = dict(image.info)
        return background
    return image.convert("RGB")
