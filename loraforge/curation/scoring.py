"""Map raw metrics onto 0..1 issue scores with a documented midpoint (score 0.5) and steepness."""

from __future__ import annotations


def falling(value: float, midpoint: float, *, steepness: float) -> float:
    """1 for value 0, 0.5 at the midpoint, towards 0 above it (a logistic curve in log space).

    Log space because the metrics are ratios at heart: half as sharp matters equally at every level.
    """
    if value <= 0.0:
        return 1.0
    return 1.0 / (1.0 + (value / midpoint) ** steepness)


def rising(value: float, midpoint: float, *, steepness: float) -> float:
    """0 for value 0, 0.5 at the midpoint, towards 1 above it."""
    return 1.0 - falling(value, midpoint, steepness=steepness)


def clamp01(value: float) -> float:
    return min(1.0, max(0.0, value))
