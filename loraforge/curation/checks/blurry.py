"""Blurry: too little fine detail even in the sharpest part of the picture."""

from __future__ import annotations

from loraforge.curation.features import ImageFeatures
from loraforge.curation.registry import Check, CheckContext, register_check
from loraforge.curation.scoring import falling

SHARPNESS_MIDPOINT = 0.3
"""Focus of the sharpest tiles (metrics.tile_sharpness on the 512 px working copy) that scores 0.5."""


@register_check("blurry")
class Blurry(Check):
    describe = "out of focus or motion-blurred: little fine detail even in its sharpest region"

    def score(self, features: ImageFeatures, *, context: CheckContext) -> float:
        return falling(features.sharpness, SHARPNESS_MIDPOINT, steepness=4.0)
