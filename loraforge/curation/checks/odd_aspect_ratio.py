"""Odd aspect ratio: too long and thin for any training bucket without losing most of the picture."""

from __future__ import annotations

import math

from loraforge.curation.features import ImageFeatures
from loraforge.curation.registry import Check, CheckContext, register_check
from loraforge.curation.scoring import clamp01

RATIO_AT_HALF = 3.0
"""Long side over short side that scores 0.5; the score reaches 1 at RATIO_AT_HALF squared."""


@register_check("odd_aspect_ratio")
class OddAspectRatio(Check):
    describe = "long and thin: bucketing would crop or squeeze away most of it"

    def score(self, features: ImageFeatures, *, context: CheckContext) -> float:
        ratio = max(features.width, features.height) / max(1, min(features.width, features.height))
        return clamp01(math.log(ratio) / (2.0 * math.log(RATIO_AT_HALF)))
