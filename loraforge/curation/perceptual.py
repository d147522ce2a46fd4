"""64-bit perceptual hashes (pHash, dHash) of a picture and of its mirror image, as ints and hex.

pHash matches imagehash.phash bit for bit (same resize, unnormalised DCT-II, median over the 8x8
low-frequency block, first coefficient in the most significant bit), so it compares with hashes stored at
ingest. The mirrored pHash comes from the same DCT: flipping columns multiplies the coefficient of
horizontal frequency v by (-1)^v, so no second resize or transform is needed.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from PIL import Image

_PHASH_SIZE = 32
_LOW = 8


@dataclass(frozen=True)
class PerceptualHashes:
    phash: int
    phash_mirror: int
    dhash: int
    dhash_mirror: int
    contrast: float
    """Standard deviation of the 32x32 grey copy the pHash is taken from: near 0, the hash is noise."""


def perceptual_hashes(image: Image.Image) -> PerceptualHashes:
    """Both hashes of an RGB or grey PIL image and of its horizontal mirror."""
    grey = image.convert("L")
    small = np.asarray(grey.resize((_PHASH_SIZE, _PHASH_SIZE), Image.Resampling.LANCZOS), dtype=np.float64)
    coefficients = _dct_matrix() @ small @ _dct_matrix().T
    low = coefficients[:_LOW, :_LOW]
    mirrored = low * _mirror_signs()
    strip = np.asarray(grey.resize((_LOW + 1, _LOW), Image.Resampling.LANCZOS), dtype=np.int16)
    return PerceptualHashes(
        phash=bits_to_int(low > np.median(low)),
        phash_mirror=bits_to_int(mirrored > np.median(mirrored)),
        dhash=bits_to_int(strip[:, 1:] > strip[:, :-1]),
        dhash_mirror=_dhash_of(strip[:, ::-1]),
        contrast=float(small.std()),
    )


CROP_FRACTION = 0.9
"""Side of the crop views relative to the picture: a 90% crop anywhere is at most 5% off one of them."""


def crop_view_phashes(image: Image.Image) -> tuple[int, int, int, int, int]:
    """pHashes of the four corner and the centre crops at CROP_FRACTION of each side.

    A plain pHash moves 10-30 bits when a picture is cropped to 90%; one of these views stays within
    a few bits of the crop's own hash, so querying them finds cropped copies the full hash misses.
    """
    grey = image.convert("L")
    w, h = grey.size
    cw, ch = max(1, round(w * CROP_FRACTION)), max(1, round(h * CROP_FRACTION))
    corners = ((0, 0), (w - cw, 0), (0, h - ch), (w - cw, h - ch), ((w - cw) // 2, (h - ch) // 2))
    views = []
    for x, y in corners:
        small = grey.resize(
            (_PHASH_SIZE, _PHASH_SIZE), Image.Resampling.LANCZOS, box=(x, y, x + cw, y + ch), reducing_gap=2.0
        )
        coefficients = _dct_matrix() @ np.asarray(small, dtype=np.float64) @ _dct_matrix().T
        low = coefficients[:_LOW, :_LOW]
        views.append(bits_to_int(low > np.median(low)))
    return (views[0], views[1], views[2], views[3], views[4])


def _dhash_of(strip: np.ndarray) -> int:
    return bits_to_int(strip[:, 1:] > strip[:, :-1])


def bits_to_int(bits: np.ndarray) -> int:
    """Pack a boolean array, first element as the most significant bit (imagehash's order)."""
    value = 0
    for bit in np.asarray(bits).ravel():
        value = (value << 1) | int(bool(bit))
    return value


def to_hex(value: int) -> str:
    return f"{value:016x}"


def from_hex(text: str) -> int:
    return int(text, 16)


def hamming(a: int, b: int) -> int:
    return (a ^ b).bit_count()


@lru_cache(maxsize=1)
def _dct_matrix() -> np.ndarray:
    """Unnormalised DCT-II (scipy's default): y_k = 2 sum_n x_n cos(pi k (2n + 1) / 2N)."""
    n = np.arange(_PHASH_SIZE)
    return 2.0 * np.cos(np.pi * np.outer(n, 2 * n + 1) / (2 * _PHASH_SIZE))


@lru_cache(maxsize=1)
def _mirror_signs() -> np.ndarray:
    return np.tile((-1.0) ** np.arange(_LOW), (_LOW, 1))
