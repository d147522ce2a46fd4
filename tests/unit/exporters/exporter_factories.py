"""Small factories for exporter tests: generated images in several formats, items and specs."""

from __future__ import annotations

import hashlib
import io
from functools import lru_cache
from typing import Any

from PIL import Image

from loraforge.exporters import ExportItem, ExportSpec, safe_stem

_PIL_FORMATS = {"jpeg": "JPEG", "png": "PNG", "webp": "WEBP"}


@lru_cache(maxsize=64)
def image_bytes(fmt: str, size: tuple[int, int], colour: tuple[int, int, int] = (200, 80, 40)) -> bytes:
    img = Image.new("RGB", size, colour)
    for x in range(0, size[0], 7):
        img.putpixel((x, x % size[1]), (x % 256, 0, 255 - x % 256))
    out = io.BytesIO()
    img.save(out, format=_PIL_FORMATS[fmt])
    return out.getvalue()


def make_item(
    index: int,
    fmt: str = "jpeg",
    *,
    size: tuple[int, int] = (1024, 1024),
    caption: str | None = "",
    bucket: tuple[int, int] | None = None,
    status: str = "kept",
    faces: list[Any] | None = None,
    filename: str | None = None,
) -> ExportItem:
    data = image_bytes(fmt, size, colour=(index * 37 % 256, 90, 30))
    sha = hashlib.sha256(data).hexdigest()
    if caption == "":
        caption = f"ohwx person standing in photo number {index}"
    return ExportItem(
        image_id=f"img-{index}",
        stem=safe_stem(filename or f"Photo {index}.{fmt}", sha),
        source_sha256=sha,
        caption=caption,
        bucket=bucket,
        width=size[0],
        height=size[1],
        read=lambda: data,
        source_format=fmt,
        status=status,
        faces=faces,
    )


def six_items() -> list[ExportItem]:
    """Two jpeg, two png, two webp, in landscape, portrait and square shapes, one with a face box."""
    shapes = [(1216, 832), (832, 1216), (1024, 1024), (1344, 768), (1024, 1024), (896, 1152)]
    formats = ["jpeg", "png", "webp", "jpeg", "png", "webp"]
    return [
        make_item(i, fmt, size=size, faces=[(100.0, 120.0, 400.0, 500.0)] if i == 0 else None)
        for i, (fmt, size) in enumerate(zip(formats, shapes, strict=True))
    ]


def make_spec(fmt: str, **overrides: Any) -> ExportSpec:
    values: dict[str, Any] = {
        "format": fmt,
        "trigger_word": "ohwx",
        "class_word": "person",
        "target_model": "sdxl",
    }
    values.update(overrides)
    return ExportSpec(**values)
