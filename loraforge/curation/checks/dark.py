"""Dark: underexposed, where even the brightest pixels stay dim."""

from __future__ import annotations

from loraforge.curation.features import ImageFeatures
from loraforge.curation.registry import Check, CheckContext, register_check
from loraforge.curation.scoring import falling

HIGHLIGHT_MIDPOINT = 92.0
"""99th percentile of luma (0..255) that scores 0.5."""


@register_check("dark")
class Dark(Check):
    describe = "underexposed: even its brightest parts are dim"

    def score(self, features: ImageFeatures, *, context: CheckContext) -> float:
        # Judged on the highlights, not the mean: a night shot with a lit subject is dark on average
        # but exposed correctly for what matters, and keeps its bright 1%.
        return falling(features.lum_p99, HIGHLIGHT_MIDPOINT, steepness=8.0)
