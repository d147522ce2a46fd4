"""Thumbnails for the dashboard: long side 256, WebP."""

from __future__ import annotations

import io

from PIL import Image

THUMBNAIL_SIDE = 256


def thumbnail_image(image: Image.Image, *, side: int = THUMBNAIL_SIDE) -> Image.Image:
    """A copy whose long side is at most `side` (never upscaled)."""
    thumb = image.copy()
    thumb.thumbnail((side, side), Image.Resampling.LANCZOS, reducing_gap=2.0)
    return thumb


def encode_thumbnail(thumb: Image.Image, *, quality: int = 80) -> bytes:
    """WebP at a fast encoder setting: thumbnails are for eyes, not for training."""
    out = io.BytesIO()
    thumb.save(out, format="WEBP", quality=quality, method=1)
    return out.getvalue()


def draft_size_for(width: int, height: int, *, side: int = THUMBNAIL_SIDE) -> tuple[int, int]:
    """The smallest decode size whose long side still reaches `side`, keeping the aspect ratio."""
    scale = side / max(width, height)
    return max(1, round(width * scale)), max(1, round(height * scale))


def make_thumbnail(image: Image.Image, *, side: int = THUMBNAIL_SIDE) -> bytes:
    """Thumbnail bytes of a decoded picture in one call."""
    return encode_thumbnail(thumbnail_image(image, side=side))
