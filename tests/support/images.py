"""Small factories for test pictures: real photos shipped in packages, synthetic ones, and broken ones."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image


def real_photo_paths() -> dict[str, Path]:
    """Real photographs that ship inside installed packages (scikit-image, scikit-learn, matplotlib)."""
    import matplotlib
    import skimage
    import sklearn

    sk = Path(skimage.__file__).parent / "data"
    paths = {name: sk / f"{name}.png" for name in ("astronaut", "coffee", "chelsea")}
    paths["rocket"] = sk / "rocket.jpg"
    paths["china"] = Path(sklearn.__file__).parent / "datasets" / "images" / "china.jpg"
    paths["flower"] = Path(sklearn.__file__).parent / "datasets" / "images" / "flower.jpg"
    paths["grace_hopper"] = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"
    return paths


def real_photo(name: str) -> Image.Image:
    return Image.open(real_photo_paths()[name]).convert("RGB")


def noise_image(width: int, height: int, seed: int = 0) -> Image.Image:
    """A textured picture: every seed gives different bytes and different hashes."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 255, size=(max(height // 8, 1), max(width // 8, 1), 3), dtype=np.uint8)
    return Image.fromarray(small).resize((width, height), Image.Resampling.BICUBIC)


def encode(image: Image.Image, fmt: str = "JPEG", **options: object) -> bytes:
    out = io.BytesIO()
    image.save(out, format=fmt, **options)
    return out.getvalue()


def jpeg_bytes(width: int = 640, height: int = 480, seed: int = 0, quality: int = 90) -> bytes:
    return encode(noise_image(width, height, seed), "JPEG", quality=quality)


def truncated_jpeg(seed: int = 1) -> bytes:
    data = jpeg_bytes(seed=seed)
    return data[: len(data) // 2]


def corrupt_jpeg(seed: int = 2) -> bytes:
    """A JPEG with an intact start and an impossible Huffman table, as bit rot leaves them."""
    data = bytearray(jpeg_bytes(seed=seed))
    table = data.find(b"\xff\xc4")
    data[table + 5 : table + 21] = b"\xff" * 16  # code counts per length that no table can have
    return bytes(data)


def zip_bytes(entries: dict[str, bytes], compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=compression) as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return out.getvalue()


def zip_bomb_entry_bytes(size: int = 64 * 1024 * 1024) -> bytes:
    """A highly compressible entry: a few kilobytes that expand to `size` bytes."""
    return b"\0" * size
