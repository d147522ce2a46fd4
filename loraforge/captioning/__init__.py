"""Caption text policy: artefact clean-up, trigger word placement, token-length checks."""

from loraforge.captioning.cleanup import clean_caption
from loraforge.captioning.policy import PLACEHOLDER, CaptionPolicy, PolicyResult
from loraforge.captioning.tokens import approximate_token_count, clip_token_count, max_tokens_for

__all__ = [
    "PLACEHOLDER",
    "CaptionPolicy",
    "PolicyResult",
    "approximate_token_count",
    "clean_caption",
    "clip_token_count",
    "max_tokens_for",
]
