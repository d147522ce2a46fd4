"""Grayscale: no colour in the pixels, whatever the file's mode says (grey saved as RGB counts)."""

from __future__ import annotations

from loraforge.curation.features import ImageFeatures
from loraforge.curation.registry import Check, CheckContext, register_check
from loraforge.curation.scoring import falling

CHROMA_MIDPOINT = 8.0
"""95th percentile of per-pixel chroma (max minus min of R, G, B) that scores 0.5."""


@register_check("grayscale")
class Grayscale(Check):
    describe = "black and white: almost no pixel has colour, so colour would not be learned"
    tag = "black and white photo"
    """Kept and captioned as such by default: the LoRA then learns the subject, not the lack of colour."""

    def score(self, features: ImageFeatures, *, context: CheckContext) -> float:
        return falling(features.chroma_p95, CHROMA_MIDPOINT, steepness=3.0)
