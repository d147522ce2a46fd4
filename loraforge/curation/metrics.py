"""Pure quality metrics on small numpy images: sharpness, exposure, information content, colourfulness.

Every function takes an array the caller already reduced to a fixed working size, so the figures do not
depend on the original resolution. RGB arrays are (H, W, 3) uint8; grey arrays are (H, W) float32 in 0..255.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Rec. 601 luma: what a human reads as brightness, and what JPEG stores as Y.
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)
LUMINANCE_PERCENTILES = (1, 5, 25, 50, 75, 95, 99)


def luminance(rgb: np.ndarray) -> np.ndarray:
    """Rec. 601 luma of an RGB uint8 array, float32 0..255."""
    return np.asarray(rgb, dtype=np.float32) @ _LUMA


def laplacian(grey: np.ndarray) -> np.ndarray:
    """4-neighbour discrete Laplacian of the interior pixels."""
    g = np.asarray(grey, dtype=np.float32)
    return g[1:-1, :-2] + g[1:-1, 2:] + g[:-2, 1:-1] + g[2:, 1:-1] - 4.0 * g[1:-1, 1:-1]


def laplacian_variance(grey: np.ndarray) -> float:
    """Variance of the Laplacian over the whole picture: low means few sharp edges anywhere."""
    if min(grey.shape) < 3:
        return 0.0
    return float(laplacian(grey).var())


def tile_sharpness(grey: np.ndarray, *, grid: int = 4, top: int = 3) -> float:
    """Mean focus of the `top` sharpest tiles of a grid x grid split.

    A tile's focus is var(Laplacian) / sqrt(var(grey) + 25): the Laplacian grows with the square of the
    contrast, so dividing by the contrast keeps a sharp but low-contrast picture from reading as blurred,
    while the remaining factor of contrast keeps flat noisy tiles from reading as sharp (the +25 too).
    A portrait with a sharp face and a blurred background is sharp where it matters, and the sharpest
    few tiles say so where the global variance would call the whole picture blurry.
    """
    g = np.asarray(grey, dtype=np.float32)
    if min(g.shape) < 3 * grid:
        return laplacian_variance(g) / float(np.sqrt(g.var() + 25.0))
    lap = laplacian(g)
    inner = g[1:-1, 1:-1]
    rows = np.array_split(np.arange(lap.shape[0]), grid)
    cols = np.array_split(np.arange(lap.shape[1]), grid)
    focus = []
    for r in rows:
        for c in cols:
            rs, cs = slice(r[0], r[-1] + 1), slice(c[0], c[-1] + 1)
            focus.append(float(lap[rs, cs].var()) / float(np.sqrt(inner[rs, cs].var() + 25.0)))
    focus.sort(reverse=True)
    return float(np.mean(focus[: max(1, min(top, len(focus)))]))


@dataclass(frozen=True)
class Exposure:
    """Percentiles (keys are the percentile) of luma and of value, the brightest channel of each pixel.

    Value is what clips: an overexposed red retina keeps a mid luma while its red channel is burnt out.
    """

    luma: dict[int, float]
    value: dict[int, float]
    clipped_dark: float
    clipped_light: float


def exposure(grey: np.ndarray, value: np.ndarray) -> Exposure:
    """From 256-bin histograms: exact for 8-bit data and far cheaper than sorting."""
    luma_hist = np.bincount(_levels(grey).ravel(), minlength=256)
    value_hist = np.bincount(_levels(value).ravel(), minlength=256)
    total = max(1, int(value_hist.sum()))
    return Exposure(
        luma={p: histogram_percentile(luma_hist, p) for p in LUMINANCE_PERCENTILES},
        value={p: histogram_percentile(value_hist, p) for p in LUMINANCE_PERCENTILES},
        clipped_dark=float(value_hist[:11].sum() / total),
        clipped_light=float(value_hist[250:].sum() / total),
    )


def max_channel(rgb: np.ndarray) -> np.ndarray:
    """Per-pixel maximum of R, G, B (HSV value) as uint8."""
    arr = np.asarray(rgb)
    # Channel slices, not max(axis=-1): numpy reduces a trailing axis of 3 very slowly.
    return np.maximum(np.maximum(arr[..., 0], arr[..., 1]), arr[..., 2])


def _levels(values: np.ndarray) -> np.ndarray:
    levels = np.asarray(values)
    if levels.dtype != np.uint8:
        levels = np.clip(np.rint(levels.astype(np.float32)), 0, 255).astype(np.uint8)
    return levels


def histogram_percentile(histogram: np.ndarray, percentile: float) -> float:
    """The lowest level at or below which `percentile` % of the counted values lie."""
    cumulative = np.cumsum(histogram)
    if cumulative[-1] == 0:
        return 0.0
    return float(np.searchsorted(cumulative, cumulative[-1] * percentile / 100.0))


@dataclass(frozen=True)
class Information:
    """Spatial information of a tiny (about 64 px) copy, where sensor noise has averaged away.

    contrast: root mean square over R, G, B of each channel's standard deviation across pixels;
    detail: mean absolute luminance gradient between neighbouring pixels.
    Histogram entropy cannot tell a flat picture with noise from a photo; these can.
    """

    contrast: float
    detail: float


def information(tiny_rgb: np.ndarray) -> Information:
    rgb = np.asarray(tiny_rgb, dtype=np.float32).reshape(-1, 3)
    contrast = float(np.sqrt(rgb.var(axis=0).mean()))
    grey = np.asarray(tiny_rgb, dtype=np.float32) @ _LUMA
    if min(grey.shape) < 2:
        return Information(contrast=contrast, detail=0.0)
    gx = np.abs(np.diff(grey, axis=1)).mean()
    gy = np.abs(np.diff(grey, axis=0)).mean()
    return Information(contrast=contrast, detail=float((gx + gy) / 2.0))


@dataclass(frozen=True)
class Colourfulness:
    """Chroma (max minus min of R, G, B) statistics; a grey picture saved as RGB scores near 0."""

    chroma_p95: float
    colourful_fraction: float


def colourfulness(rgb: np.ndarray, *, colourful_chroma: float = 20.0) -> Colourfulness:
    arr = np.asarray(rgb)
    red, green, blue = arr[..., 0], arr[..., 1], arr[..., 2]
    chroma = max_channel(arr) - np.minimum(np.minimum(red, green), blue)
    histogram = np.bincount(chroma.ravel(), minlength=256)
    return Colourfulness(
        chroma_p95=histogram_percentile(histogram, 95),
        colourful_fraction=float(histogram[int(colourful_chroma) :].sum() / max(1, chroma.size)),
    )
