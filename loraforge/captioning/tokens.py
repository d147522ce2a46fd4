"""Caption length in text-encoder tokens: CLIP's BPE (its vocabulary ships with open_clip) or a close
approximation when that is not installed."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from functools import lru_cache

from loraforge.captioning.clip_bpe import ClipBpe, merges_path

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
def _clip_tokenizer() -> ClipBpe | None:
    path = merges_path()
    if path is None:
        logger.info("CLIP's vocabulary is not installed (the models extra); caption lengths are approximated")
        return None
    return ClipBpe(path)


def clip_token_count(text: str) -> int:
    """Tokens CLIP's text encoder sees for `text`, including start and end tokens."""
    tokenizer = _clip_tokenizer()
    if tokenizer is None:
        return approximate_token_count(text)
    return tokenizer.count(text) + _SPECIAL_TOKENS
