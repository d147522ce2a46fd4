"""Thumbnails for the dashboard: long side 256, WebP."""

from __future__ import annotations

import io

from PIL import Image

THUMBNAIL_SIDE = 256


def make_thumbnail(image: Image.Image, *, side: int = THUMBNAIL_SIDE, quality: int = 80) -> bytes:
    """Encode a WebP copy whose long side is at most `side` (never upscaled)."""
    thumb = image.copy()
    thumb.thumbnail((side, side), Image.Resampling.LANCZOS, reducing_gap=2.0)
    out = io.BytesIO()
    thumb.save(out, format="WEBP", quality=quality, method=4)
    return out.getvalue()
