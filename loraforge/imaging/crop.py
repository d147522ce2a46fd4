"""Face-aware crop boxes: the largest box of a bucket's aspect ratio that keeps heads in the picture.

Order of preference (`crop_box`), first that fits wins:
1. every face, each grown by `margin` of its size on every side ("keeps all 2 faces");
2. every face, tight boxes;
3. the main face (largest area x score) with margin, then tight ("keeps main face (3 faces don't fit)");
4. the main face is bigger than any box of that aspect: centre on it ("centred on main face (too large)");
5. no faces: centre on `subject_center` when given ("centred on subject"), else the picture centre
   ("centred").
Horizontally the kept region is centred in the box; vertically it sits at 40% of the box height, leaving
more room below a head (shoulders, body) than above it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from loraforge.errors import InvalidInput
from loraforge.imaging.buckets import Bucket
from loraforge.models.faces import FaceBox

if TYPE_CHECKING:
    from PIL import Image

Box = tuple[int, int, int, int]
_VERTICAL_ANCHOR = 0.4
_SALIENCY_SIDE = 64


@dataclass(frozen=True)
class CropDecision:
    box: Box
    """(x0, y0, x1, y1) in the picture's pixels after EXIF orientation; x1/y1 exclusive."""
    reason: str
    faces_kept: int = 0


def largest_box_size(width: int, height: int, bucket: Bucket) -> tuple[int, int]:
    """Width and height of the largest box of the bucket's aspect that fits the picture (1 px rounding)."""
    if width * bucket.height >= height * bucket.width:
        box_h = height
        box_w = min(width, max(1, round(height * bucket.width / bucket.height)))
    else:
        box_w = width
        box_h = min(height, max(1, round(width * bucket.height / bucket.width)))
    return box_w, box_h


def crop_box(
    width: int,
    height: int,
    bucket: Bucket,
    faces: list[FaceBox],
    *,
    margin: float = 0.25,
    subject_center: tuple[float, float] | None = None,
) -> CropDecision:
    """Choose the crop box by the rule in this module's docstring; deterministic for equal inputs."""
    if width < 1 or height < 1:
        raise InvalidInput(f"picture has no pixels ({width}x{height})")
    size = largest_box_size(width, height, bucket)
    usable = [face for face in faces if _clamped(face, width, height) is not None]
    if usable:
        count = len(usable)
        everyone = "the face" if count == 1 else f"all {count} faces"
        for margin_used, note in ((margin, ""), (0.0, " (tight margin)")):
            box = _fit([_region(f, margin_used, width, height) for f in usable], size, width, height)
            if box is not None:
                return CropDecision(box, f"keeps {everyone}{note}", faces_kept=count)
        main = max(usable, key=lambda f: (f.area * max(f.score, 1e-6), f.area, -f.x0, -f.y0))
        why = f"{count} faces don't fit" if count > 1 else "with margin it doesn't fit"
        for margin_used in (margin, 0.0):
            box = _fit([_region(main, margin_used, width, height)], size, width, height)
            if box is not None:
                return CropDecision(box, f"keeps main face ({why})", faces_kept=1)
        x0, y0, x1, y1 = _region(main, 0.0, width, height)
        box = _centred_on(((x0 + x1) / 2, (y0 + y1) / 2), size, width, height)
        return CropDecision(box, "centred on main face (too large for this aspect ratio)", faces_kept=0)
    if subject_center is not None:
        return CropDecision(_centred_on(subject_center, size, width, height), "centred on subject")
    return CropDecision(_centred_on((width / 2, height / 2), size, width, height), "centred")


def _clamped(face: FaceBox, width: int, height: int) -> tuple[float, float, float, float] | None:
    x0, y0 = max(0.0, face.x0), max(0.0, face.y0)
    x1, y1 = min(float(width), face.x1), min(float(height), face.y1)
    return (x0, y0, x1, y1) if x1 > x0 and y1 > y0 else None


def _region(face: FaceBox, margin: float, width: int, height: int) -> tuple[float, float, float, float]:
    clamped = _clamped(face, width, height)
    assert clamped is not None
    x0, y0, x1, y1 = clamped
    grown = FaceBox(x0, y0, x1, y1, score=face.score).expanded(margin, width, height)
    return grown


def _fit(
    regions: list[tuple[float, float, float, float]], size: tuple[int, int], width: int, height: int
) -> Box | None:
    """A box of `size` containing every region, or None when they cannot all fit."""
    ux0 = min(r[0] for r in regions)
    uy0 = min(r[1] for r in regions)
    ux1 = max(r[2] for r in regions)
    uy1 = max(r[3] for r in regions)
    box_w, box_h = size
    x0 = _place(width, box_w, ux0, ux1, anchor=0.5)
    y0 = _place(height, box_h, uy0, uy1, anchor=_VERTICAL_ANCHOR)
    if x0 is None or y0 is None:
        return None
    return (x0, y0, x0 + box_w, y0 + box_h)


def _place(length: int, size: int, need_lo: float, need_hi: float, *, anchor: float) -> int | None:
    """Integer start on one axis keeping [need_lo, need_hi] inside and the box inside [0, length]."""
    low = max(0, math.ceil(need_hi - size - 1e-9))
    high = min(length - size, math.floor(need_lo + 1e-9))
    if low > high:
        return None
    centre = (need_lo + need_hi) / 2
    wanted = round(centre - size * anchor)
    return min(high, max(low, wanted))


def _centred_on(point: tuple[float, float], size: tuple[int, int], width: int, height: int) -> Box:
    box_w, box_h = size
    x0 = min(width - box_w, max(0, round(point[0] - box_w / 2)))
    y0 = min(height - box_h, max(0, round(point[1] - box_h / 2)))
    return (x0, y0, x0 + box_w, y0 + box_h)


def saliency_center(image: Image.Image) -> tuple[float, float]:
    """Centre of visual interest by spectral residual saliency (Hou & Zhang 2007) on a 64 px copy.

    Returns (x, y) in the image's pixel coordinates; a featureless picture gives its centre.
    """
    from PIL import Image as PILImage

    small = image.convert("L").resize((_SALIENCY_SIDE, _SALIENCY_SIDE), PILImage.Resampling.BILINEAR)
    gray = np.asarray(small, dtype=np.float64) / 255.0
    if gray.std() < 1e-3:  # flat: the spectrum holds only rounding noise
        return (image.width / 2, image.height / 2)
    spectrum = np.fft.fft2(gray)
    log_amplitude = np.log(np.abs(spectrum) + 1e-9)
    residual = log_amplitude - _box_blur(log_amplitude, 3)
    saliency = np.abs(np.fft.ifft2(np.exp(residual + 1j * np.angle(spectrum)))) ** 2
    saliency = _gaussian_blur(saliency, sigma=2.5)
    # Only the strongest responses vote, so a uniform background does not drag the centre to the middle.
    weights = np.clip(saliency - np.percentile(saliency, 90), 0.0, None)
    total = weights.sum()
    if not np.isfinite(total) or total <= 1e-12:
        return (image.width / 2, image.height / 2)
    ys, xs = np.mgrid[0:_SALIENCY_SIDE, 0:_SALIENCY_SIDE]
    cx = float((weights * (xs + 0.5)).sum() / total)
    cy = float((weights * (ys + 0.5)).sum() / total)
    return (cx * image.width / _SALIENCY_SIDE, cy * image.height / _SALIENCY_SIDE)


def _box_blur(array: np.ndarray, size: int) -> np.ndarray:
    kernel = np.ones(size) / size
    return _separable(array, kernel, wrap=True)


def _gaussian_blur(array: np.ndarray, *, sigma: float) -> np.ndarray:
    radius = max(1, int(3 * sigma))
    xs = np.arange(-radius, radius + 1)
    kernel = np.exp(-(xs**2) / (2 * sigma**2))
    return _separable(array, kernel / kernel.sum(), wrap=False)


def _separable(array: np.ndarray, kernel: np.ndarray, *, wrap: bool) -> np.ndarray:
    pad = len(kernel) // 2
    out = array
    for axis in (0, 1):
        widths = ((pad, pad), (0, 0)) if axis == 0 else ((0, 0), (pad, pad))
        padded = np.pad(out, widths, mode="wrap") if wrap else np.pad(out, widths, mode="reflect")
        out = np.apply_along_axis(lambda v: np.convolve(v, kernel, mode="valid"), axis, padded)
    return out
