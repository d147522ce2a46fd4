"""Image preparation: pass-through, conversion, sniffing and face masks."""

from __future__ import annotations

import io

from exporter_factories import image_bytes
from PIL import Image

from loraforge.exporters.images import face_mask_png, prepare_image, sniff_format


def test_jpeg_and_png_pass_through_byte_for_byte() -> None:
    for fmt, ext in (("jpeg", "jpg"), ("png", "png")):
        data = image_bytes(fmt, (64, 48))
        prepared = prepare_image(data, declared_format=fmt, convert_to="png", jpeg_quality=95)
        assert prepared.data == data and prepared.ext == ext and prepared.converted_from is None


def test_webp_converts_to_png_or_jpeg() -> None:
    data = image_bytes("webp", (64, 48))
    as_png = prepare_image(data, declared_format="webp", convert_to="png", jpeg_quality=95)
    as_jpg = prepare_image(data, declared_format="webp", convert_to="jpeg", jpeg_quality=90)
    assert (as_png.ext, as_jpg.ext) == ("png", "jpg") and as_png.converted_from == "webp"
    for prepared, fmt in ((as_png, "PNG"), (as_jpg, "JPEG")):
        with Image.open(io.BytesIO(prepared.data)) as img:
            assert img.format == fmt and img.size == (64, 48)


def test_rgba_webp_to_jpeg_flattens_on_white() -> None:
    out = io.BytesIO()
    Image.new("RGBA", (8, 8), (0, 0, 0, 0)).save(out, format="WEBP", lossless=True)
    prepared = prepare_image(out.getvalue(), declared_format="webp", convert_to="jpeg", jpeg_quality=95)
    with Image.open(io.BytesIO(prepared.data)) as img:
        assert img.convert("L").getextrema()[0] > 240


def test_sniffing_trusts_bytes_over_declared_format() -> None:
    assert sniff_format(image_bytes("png", (4, 4)), "jpeg") == "png"
    assert sniff_format(b"GIF89a...", "gif") == "gif"
    prepared = prepare_image(
        image_bytes("jpeg", (8, 8)), declared_format="webp", convert_to="png", jpeg_quality=95
    )
    assert prepared.ext == "jpg"


def test_face_mask_covers_grown_box_only() -> None:
    mask_bytes = face_mask_png((200, 100), [(50, 25, 100, 75)], margin=0.2)
    with Image.open(io.BytesIO(mask_bytes)) as mask:
        assert mask.mode == "L" and mask.size == (200, 100)
        assert mask.getpixel((75, 50)) == 255 and mask.getpixel((42, 50)) == 255  # inside the 20% margin
        assert mask.getpixel((30, 50)) == 0 and mask.getpixel((150, 50)) == 0


def test_webp_the_user_asked_for_passes_through() -> None:
    """`--image-format webp` makes the bucket stage write WebP; the export then keeps it byte for byte."""
    webp = image_bytes("webp", (48, 32))
    kept = prepare_image(webp, declared_format="webp", convert_to="png", jpeg_quality=95, keep_webp=True)
    assert kept.data == webp and kept.ext == "webp" and kept.converted_from is None
    converted = prepare_image(webp, declared_format="webp", convert_to="png", jpeg_quality=95)
    assert converted.ext == "png" and converted.converted_from == "webp"
