"""Low resolution: too few pixels for the target model's training resolution."""

from __future__ import annotations

import math

from loraforge.curation.features import ImageFeatures
from loraforge.curation.registry import Check, CheckContext, register_check
from loraforge.curation.scoring import clamp01


@register_check("low_resolution")
class LowResolution(Check):
    """Score 1 - sqrt(width * height) / target: 0 at the training size, 0.5 at half of it.

    Flagged from 0.6 (under 40% of the training side, more than a 2.5x upscale): a 512 px photo for a
    1024 px model is common and trains acceptably; the bucket stage still reports every upscale factor.
    """

    describe = "far fewer pixels than the target model trains on; it would be upscaled a lot"
    default_threshold = 0.6

    def score(self, features: ImageFeatures, *, context: CheckContext) -> float:
        # Buckets keep the area near target^2 whatever the aspect ratio, so compare the area's side.
        return clamp01(1.0 - math.sqrt(features.pixels) / context.target_resolution)
