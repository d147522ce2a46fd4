"""Low resolution: too few pixels for the target model's training resolution."""

from __future__ import annotations

import math

from loraforge.curation.features import ImageFeatures
from loraforge.curation.registry import Check, CheckContext, register_check
from loraforge.curation.scoring import clamp01


@register_check("low_resolution")
class LowResolution(Check):
    """Score 1 - sqrt(width * height) / target: 0 at the training size, 0.5 at half of it (the default)."""

    describe = "fewer pixels than the target model trains on; it would be upscaled"

    def score(self, features: ImageFeatures, *, context: CheckContext) -> float:
        # Buckets keep the area near target^2 whatever the aspect ratio, so compare the area's side.
        return clamp01(1.0 - math.sqrt(features.pixels) / context.target_resolution)
