"""measure(): one decode, orientation-aware sizes, JSON round trip, hashes that match imagehash."""

from __future__ import annotations

import io
import json

import imagehash
import pytest
from PIL import Image

from loraforge.curation.features import ImageFeatures, measure
from loraforge.curation.perceptual import from_hex, hamming
from loraforge.errors import InvalidInput

from .curation_factories import encode, photo


def test_features_round_trip_through_json() -> None:
    features = measure(encode(photo(), "JPEG", quality=90), max_pixels=10**7)
    restored = ImageFeatures.from_dict(json.loads(json.dumps(features.to_dict())))
    assert restored == features
    assert len(restored.crop_phashes) == 5


def test_exif_orientation_swaps_width_and_height() -> None:
    image = photo((300, 200))
    exif = Image.Exif()
    exif[0x0112] = 6
    features = measure(encode(image, "JPEG", exif=exif.tobytes()), max_pixels=10**7)
    assert (features.width, features.height) == (200, 300)


def test_phash_matches_imagehash() -> None:
    data = encode(photo(), "PNG")
    assert measure(data, max_pixels=10**7).phash == str(imagehash.phash(Image.open(io.BytesIO(data))))


def test_mirrored_hash_equals_the_hash_of_the_mirrored_picture() -> None:
    image = photo()
    mirrored = measure(encode(image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)), max_pixels=10**7)
    original = measure(encode(image), max_pixels=10**7)
    assert hamming(from_hex(original.phash_mirror), from_hex(mirrored.phash)) <= 2
    assert hamming(from_hex(original.phash), from_hex(mirrored.phash)) > 12


def test_same_pixels_with_other_metadata_share_the_pixel_hash_not_the_sha256() -> None:
    image = photo()
    plain = measure(encode(image, "PNG"), max_pixels=10**7)
    tagged = measure(encode(image, "PNG", pnginfo=_png_note("hello")), max_pixels=10**7)
    assert plain.sha256 != tagged.sha256
    assert plain.pixel_hash == tagged.pixel_hash


def test_refuses_garbage_and_oversized_pictures() -> None:
    with pytest.raises(InvalidInput):
        measure(b"not an image", max_pixels=10**7)
    with pytest.raises(InvalidInput):
        measure(encode(photo()), max_pixels=1000)


def test_stale_feature_versions_are_refused() -> None:
    data = measure(encode(photo()), max_pixels=10**7).to_dict()
    data["version"] = 0
    with pytest.raises(InvalidInput):
        ImageFeatures.from_dict(data)


def _png_note(text: str):
    from PIL import PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_text("Comment", text)
    return info
