"""Low information: a nearly flat picture (blank wall, lens cap, solid fill), judged on a tiny copy."""

from __future__ import annotations

from loraforge.curation.features import ImageFeatures
from loraforge.curation.registry import Check, CheckContext, register_check
from loraforge.curation.scoring import falling

INFORMATION_MIDPOINT = 8.0
"""Colour standard deviation plus twice the mean gradient of the 64 px copy that scores 0.5."""


@register_check("low_information")
class LowInformation(Check):
    describe = "nearly flat: little contrast or structure once sensor noise is averaged away"

    def score(self, features: ImageFeatures, *, context: CheckContext) -> float:
        return falling(features.contrast + 2.0 * features.detail, INFORMATION_MIDPOINT, steepness=3.0)
