"""Light: overexposed or washed out, where most pixels have a channel near clipping."""

from __future__ import annotations

from loraforge.curation.features import ImageFeatures
from loraforge.curation.registry import Check, CheckContext, register_check
from loraforge.curation.scoring import falling

HEADROOM_MIDPOINT = 20.0
"""255 minus the median value (each pixel's brightest channel) that scores 0.5."""


@register_check("light")
class Light(Check):
    """Scored on value, not luma: an overexposed skin tone or red retina burns out its red channel first.

    Known limit: a product shot on a pure white background that fills over half of the frame looks the
    same to a histogram; raise the threshold for such datasets.
    """

    describe = "overexposed: most of the picture has a channel burnt out to white"

    def score(self, features: ImageFeatures, *, context: CheckContext) -> float:
        return falling(max(0.0, 255.0 - features.value_p50), HEADROOM_MIDPOINT, steepness=3.0)
