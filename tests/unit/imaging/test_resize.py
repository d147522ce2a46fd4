"""Rendering crops to exact bucket sizes, sRGB conversion, reduced JPEG decode and encoding."""

from __future__ import annotations

import io
import random
import struct

import numpy as np
import pytest
from imaging_photos import astronaut
from PIL import Image, ImageCms

from loraforge.errors import InvalidInput
from loraforge.imaging.buckets import Bucket, bucket_set, choose_bucket
from loraforge.imaging.crop import crop_box
from loraforge.imaging.resize import encode, render_crop, render_crop_from_bytes


def gradient(width: int, height: int) -> Image.Image:
    xs = np.linspace(0, 255, width, dtype=np.float32)[None, :]
    ys = np.linspace(0, 255, height, dtype=np.float32)[:, None]
    rgb = np.stack([xs + 0 * ys, ys + 0 * xs, (xs + ys) / 2], axis=-1).astype(np.uint8)
    return Image.fromarray(rgb)


def srgb_bytes() -> bytes:
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def channel_swapping_profile() -> bytes:
    """sRGB with the red and blue primaries exchanged: pure red in it is pure blue in sRGB."""
    raw = bytearray(srgb_bytes())
    entries = {}
    for index in range(struct.unpack(">I", raw[128:132])[0]):
        offset = 132 + 12 * index
        entries[bytes(raw[offset : offset + 4])] = offset
    red, blue = entries[b"rXYZ"], entries[b"bXYZ"]
    raw[red + 4 : red + 12], raw[blue + 4 : blue + 12] = raw[blue + 4 : blue + 12], raw[red + 4 : red + 12]
    return bytes(raw)


def jpeg_bytes(image: Image.Image, *, orientation: int | None = None) -> bytes:
    exif = Image.Exif()
    if orientation:
        exif[0x0112] = orientation
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=92, exif=exif.tobytes())
    return buffer.getvalue()


def test_rendered_size_is_exactly_a_bucket_for_random_pictures() -> None:
    rng = random.Random(11)
    for case in range(330):
        target = rng.choice(["sd15", "sdxl", "flux"])
        # Most cases at a reduced resolution (same generator and step) keep the test fast.
        buckets = (
            bucket_set(target) if case % 11 == 0 else bucket_set(target, resolution=rng.choice([192, 256]))
        )
        width, height = rng.randint(16, 1600), rng.randint(16, 1600)
        picture = Image.new("RGB", (width, height), (rng.randint(0, 255), 80, 160))
        bucket = choose_bucket(width, height, buckets, max_upscale=8.0).bucket
        rendered = render_crop(picture, crop_box(width, height, bucket, []).box, bucket)
        assert rendered.size == (bucket.width, bucket.height)
        assert rendered.width % buckets.step == 0 and rendered.height % buckets.step == 0
        assert rendered.mode == "RGB"


def test_big_downscale_matches_a_plain_lanczos_closely() -> None:
    picture = astronaut().resize((2048, 2048), Image.Resampling.BICUBIC)
    bucket = Bucket(512, 512)
    fast = np.asarray(render_crop(picture, (0, 0, 2048, 2048), bucket), dtype=np.float32)
    plain = np.asarray(picture.resize((512, 512), Image.Resampling.LANCZOS), dtype=np.float32)
    assert np.abs(fast - plain).mean() < 1.0


def test_non_srgb_profile_is_converted_to_srgb() -> None:
    picture = Image.new("RGB", (300, 200), (255, 0, 0))
    picture.info["icc_profile"] = channel_swapping_profile()
    rendered = render_crop(picture, (0, 0, 300, 200), Bucket(192, 128))
    red, green, blue = rendered.getpixel((96, 64))
    assert blue > 240 and red < 15 and green < 15
    assert "icc_profile" not in rendered.info


def test_srgb_profile_and_no_profile_pass_pixels_through() -> None:
    tagged = gradient(256, 256)
    tagged.info["icc_profile"] = srgb_bytes()
    untagged = gradient(256, 256)
    a = np.asarray(render_crop(tagged, (0, 0, 256, 256), Bucket(128, 128)), dtype=np.int16)
    b = np.asarray(render_crop(untagged, (0, 0, 256, 256), Bucket(128, 128)), dtype=np.int16)
    assert np.abs(a - b).max() <= 2


def test_transparent_and_grey_pictures_come_out_rgb() -> None:
    rgba = Image.new("RGBA", (100, 100), (0, 0, 0, 0))
    rendered = render_crop(rgba, (0, 0, 100, 100), Bucket(64, 64))
    assert rendered.mode == "RGB" and rendered.getpixel((10, 10)) == (255, 255, 255)
    assert render_crop(Image.new("L", (90, 60), 7), (0, 0, 90, 60), Bucket(96, 64)).getpixel((1, 1)) == (
        7,
        7,
        7,
    )


def test_box_outside_the_picture_is_refused() -> None:
    with pytest.raises(InvalidInput):
        render_crop(Image.new("RGB", (100, 100)), (0, 0, 101, 100), Bucket(64, 64))


@pytest.mark.parametrize("orientation", [1, 6, 8])
def test_reduced_decode_renders_the_same_crop_as_a_full_decode(orientation: int) -> None:
    stored = gradient(1600, 1200)
    data = jpeg_bytes(stored, orientation=orientation)
    full = Image.open(io.BytesIO(data))
    from PIL import ImageOps

    oriented = ImageOps.exif_transpose(full)
    bucket = Bucket(256, 256)
    box = crop_box(oriented.width, oriented.height, bucket, []).box
    reduced = render_crop_from_bytes(data, box, bucket, max_pixels=10_000_000)
    reference = render_crop(oriented.convert("RGB"), box, bucket)
    assert reduced.size == (256, 256)
    diff = np.abs(np.asarray(reduced, dtype=np.int16) - np.asarray(reference, dtype=np.int16))
    assert diff.mean() < 3.0


def test_encode_jpeg_and_png() -> None:
    picture = gradient(64, 48)
    jpeg = encode(picture, "jpeg", quality=90)
    png = encode(picture, "png")
    assert jpeg[:3] == b"\xff\xd8\xff" and png[:8] == b"\x89PNG\r\n\x1a\n"
    assert Image.open(io.BytesIO(png)).tobytes() == picture.tobytes()
    assert Image.open(io.BytesIO(jpeg)).size == (64, 48)
    with pytest.raises(InvalidInput):
        encode(picture, "gif")
