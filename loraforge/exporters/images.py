"""Image bytes as trainers accept them (jpeg/png pass through, other formats re-encoded), and loss masks."""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from loraforge.errors import InvalidInput

FACE_MASK_MARGIN = 0.2
"""Each face box grows by this share of its size on every side, so hair and jaw stay in the mask."""

if TYPE_CHECKING:
    from PIL.Image import Image as PILImage

_PASS_THROUGH = {"jpeg": "jpg", "png": "png"}


@dataclass(frozen=True)
class PreparedImage:
    """Bytes ready to write and the extension they go out with."""

    data: bytes
    ext: str
    converted_from: str | None = None


def sniff_format(data: bytes, declared: str) -> str:
    """The real format from magic bytes; the declared one when the bytes say nothing we know."""
    if data[:3] == b"\xff\xd8\xff":
        return "jpeg"
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return "png"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    return declared.lower().replace("jpg", "jpeg")


def prepare_image(
    data: bytes, *, declared_format: str, convert_to: str, jpeg_quality: int, keep_webp: bool = False
) -> PreparedImage:
    """Pass jpeg/png through byte for byte; decode anything else and re-encode it (originals untouched).

    WebP, which some trainers read badly, passes through only with `keep_webp`: pictures the bucket
    stage wrote as WebP because the user asked for `--image-format webp`.
    """
    fmt = sniff_format(data, declared_format)
    if fmt in _PASS_THROUGH:
        return PreparedImage(data, _PASS_THROUGH[fmt])
    if fmt == "webp" and keep_webp:
        return PreparedImage(data, "webp")
    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as img:
            img.load()
            picture = ImageOps.exif_transpose(img)
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise InvalidInput(f"cannot decode {fmt} image for conversion: {exc}") from exc
    out = io.BytesIO()
    if convert_to == "jpeg":
        picture = _flatten(picture)
        picture.save(out, format="JPEG", quality=jpeg_quality, subsampling=0 if jpeg_quality >= 90 else 2)
        return PreparedImage(out.getvalue(), "jpg", converted_from=fmt)
    if picture.mode not in ("RGB", "RGBA", "L", "LA"):
        picture = picture.convert("RGBA" if "A" in picture.getbands() else "RGB")
    picture.save(out, format="PNG", compress_level=6)
    return PreparedImage(out.getvalue(), "png", converted_from=fmt)


def _flatten(picture: PILImage) -> PILImage:
    """JPEG has no alpha: composite transparent pixels on white rather than on black."""
    from PIL import Image

    if "A" in picture.getbands() or picture.mode == "P":
        rgba = picture.convert("RGBA")
        background = Image.new("RGB", rgba.size, (255, 255, 255))
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    return picture.convert("RGB")


def image_size(data: bytes) -> tuple[int, int]:
    """Width and height from the header only."""
    from PIL import Image

    with Image.open(io.BytesIO(data)) as img:
        return img.size


def face_mask_png(
    size: tuple[int, int], faces: Sequence[Sequence[float]], *, margin: float = FACE_MASK_MARGIN
) -> bytes:
    """A greyscale loss mask: white over the (grown) face boxes, black elsewhere, as OneTrainer reads it."""
    from PIL import Image, ImageDraw

    width, height = size
    mask = Image.new("L", size, 0)
    draw = ImageDraw.Draw(mask)
    for box in faces:
        x0, y0, x1, y1 = (float(v) for v in box[:4])
        grow_x, grow_y = (x1 - x0) * margin, (y1 - y0) * margin
        draw.rectangle(
            (
                max(0.0, x0 - grow_x),
                max(0.0, y0 - grow_y),
                min(width - 1.0, x1 + grow_x),
                min(height - 1.0, y1 + grow_y),
            ),
            fill=255,
        )
    out = io.BytesIO()
    mask.save(out, format="PNG", optimize=False)
    return out.getvalue()
