"""Caption length in text-encoder tokens: CLIP's BPE (shipped inside open_clip) or a close approximation."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from functools import lru_cache

logger = logging.getLogger(__name__)

TokenCounter = Callable[[str], int]

CLIP_MAX_TOKENS = 77
T5_MAX_TOKENS = 512
# Flux reads captions with CLIP-L (77) and T5-XXL (512); the long T5 context is what carries the caption.
MAX_TOKENS_BY_TARGET: dict[str, int] = {
    "sd15": CLIP_MAX_TOKENS,
    "sdxl": CLIP_MAX_TOKENS,
    "flux": T5_MAX_TOKENS,
}
_SPECIAL_TOKENS = 2  # start- and end-of-text are part of CLIP's 77.
_APPROX_PIECE = re.compile(r"[^\W\d_]+|\d|[^\w\s]", re.UNICODE)


def max_tokens_for(target_model: str) -> int:
    """The caption token budget of a target model family (sd15, sdxl, flux)."""
    try:
        return MAX_TOKENS_BY_TARGET[target_model]
    except KeyError:
        known = ", ".join(sorted(MAX_TOKENS_BY_TARGET))
        raise ValueError(f"unknown target model {target_model!r}; expected one of {known}") from None


def approximate_token_count(text: str) -> int:
    """CLIP-like count without the vocabulary: words, digits and punctuation, long words split in two."""
    count = _SPECIAL_TOKENS
    for piece in _APPROX_PIECE.findall(text):
        # CLIP's BPE keeps common English words whole and splits rare long ones into a few pieces.
        count += 1 + len(piece) // 8
    return count


@lru_cache(maxsize=1)
def _clip_tokenizer() -> object | None:
    try:
        from open_clip.tokenizer import SimpleTokenizer

        return SimpleTokenizer()
    except Exception as exc:  # pragma: no cover - depends on the installed packages
        logger.warning("CLIP tokenizer unavailable (%s); caption lengths are approximated", exc)
        return None


def clip_token_count(text: str) -> int:
    """Tokens CLIP's text encoder sees for `text`, including start and end tokens."""
    tokenizer = _clip_tokenizer()
    if tokenizer is None:
        return approximate_token_count(text)
    return len(tokenizer.encode(text)) + _SPECIAL_TOKENS  # type: ignore[attr-defined]
