"""Decode image bytes safely: content sniffing, pixel limits, EXIF orientation, reduced-size JPEG decode."""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

from PIL import Image, ImageOps, UnidentifiedImageError

from loraforge.errors import InvalidInput

# Pillow's own bomb guard is global state; we check explicitly against our configured limit instead.
Image.MAX_IMAGE_PIXELS = None

_SIGNATURES: tuple[tuple[bytes, int, str], ...] = (
    (b"\xff\xd8\xff", 0, "jpeg"),
    (b"\x89PNG\r\n\x1a\n", 0, "png"),
    (b"GIF87a", 0, "gif"),
    (b"GIF89a", 0, "gif"),
    (b"BM", 0, "bmp"),
    (b"II*\x00", 0, "tiff"),
    (b"MM\x00*", 0, "tiff"),
)
IMAGE_EXTENSIONS = frozenset(
    {".jpg", ".jpeg", ".jpe", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff", ".avif", ".heic", ".jfif"}
)
# EXIF orientations 5-8 rotate by 90 degrees, so stored width and height swap.
_TRANSPOSING_ORIENTATIONS = {5, 6, 7, 8}


@dataclass(frozen=True)
class ImageFacts:
    width: int
    height: int
    format: str


def sniff_format(head: bytes) -> str | None:
    """The image format named by a file's first bytes, or None when it is not a known image."""
    for signature, offset, name in _SIGNATURES:
        if head[offset : offset + len(signature)] == signature:
            return name
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    if head[4:8] == b"ftyp" and head[8:12] in (b"avif", b"avis"):
        return "avif"
    return None


def open_checked(data: bytes, *, max_pixels: int) -> Image.Image:
    """Open (header only) and refuse empty, unknown or oversized pictures with a clear reason."""
    if not data:
        raise InvalidInput("empty file")
    try:
        image = Image.open(io.BytesIO(data))
    except UnidentifiedImageError as exc:
        raise InvalidInput("not an image (unrecognised content)") from exc
    except Exception as exc:  # noqa: BLE001 - Pillow raises many types on hostile headers
        raise InvalidInput(f"unreadable image header: {exc}") from exc
    width, height = image.size
    if width < 1 or height < 1:
        raise InvalidInput(f"image has no pixels ({width}x{height})")
    if width * height > max_pixels:
        raise InvalidInput(f"image too large: {width}x{height} exceeds the limit of {max_pixels:,} pixels")
    return image


def image_facts(image: Image.Image) -> ImageFacts:
    """Width and height as displayed (after EXIF orientation) and the format name."""
    width, height = image.size
    if exif_orientation(image) in _TRANSPOSING_ORIENTATIONS:
        width, height = height, width
    return ImageFacts(width=width, height=height, format=(image.format or "unknown").lower())


def exif_orientation(image: Image.Image) -> int:
    try:
        return int(image.getexif().get(0x0112, 1))
    except Exception:  # noqa: BLE001 - broken EXIF must not fail an otherwise good picture
        return 1


def decode(image: Image.Image, *, draft_size: tuple[int, int] | None = None) -> Image.Image:
    """Fully decode an opened image to RGB with EXIF orientation applied.

    With draft_size, JPEGs decode at the smallest 1/2, 1/4 or 1/8 scale still at least that large: the
    whole stream is still read, so truncation is still detected, at a fraction of the cost.
    """
    if draft_size and image.format == "JPEG":
        image.draft("RGB", draft_size)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            image.load()
        oriented = ImageOps.exif_transpose(image) or image
        if oriented.mode != "RGB":
            oriented = _to_rgb(oriented)
    except (OSError, SyntaxError, ValueError) as exc:
        raise InvalidInput(f"corrupt or truncated image: {exc}") from exc
    return oriented


def load_image(data: bytes, *, max_pixels: int, draft_size: tuple[int, int] | None = None) -> Image.Image:
    """Bytes to an RGB image with EXIF orientation applied; InvalidInput with a reason otherwise."""
    return decode(open_checked(data, max_pixels=max_pixels), draft_size=draft_size)


def _to_rgb(image: Image.Image) -> Image.Image:
    if image.mode in ("RGBA", "LA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGB", rgba.size, (255, 255, 255))
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    return image.convert("RGB")
