"""The caption policy: clean a raw caption and place the trigger word (and class word) in it exactly once."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from loraforge.captioning.cleanup import clean_caption, join_parts, tidy_punctuation
from loraforge.captioning.tokens import CLIP_MAX_TOKENS, TokenCounter, clip_token_count

Placement = Literal["front", "end"]
PLACEHOLDER = "[trigger]"
_PLACEHOLDER = re.compile(r"\[\s*trigger\s*\]", re.IGNORECASE)


def trigger_phrase(trigger: str | None, class_word: str | None) -> str:
    """What a caption starts with: the trigger, then the class word unless the trigger already ends with it
    ("ohwx" + "woman" and "ohwx woman" + "woman" both give "ohwx woman"). Empty without a trigger.

    Captions, kohya's folder name and class tokens, OneTrainer's concept and ai-toolkit's default caption all
    take this one phrase."""
    if not trigger or not trigger.strip():
        return ""
    words = _nfc(trigger).split()
    if class_word and class_word.strip():
        class_words = _nfc(class_word).split()
        if [w.casefold() for w in words[-len(class_words) :]] != [w.casefold() for w in class_words]:
            words += class_words
    return " ".join(words)


@dataclass(frozen=True)
class PolicyResult:
    """A finished caption and what the user should know about it (one line each)."""

    text: str
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class CaptionPolicy:
    """How raw captions become training captions.

    The trigger phrase is `trigger` then `class_word` ("ohwx woman"; see `trigger_phrase`). It goes where a
    `[trigger]` placeholder stands (in the caption, prefix or suffix), else at the front followed by a comma
    ("ohwx woman, a photo", so kohya's keep_tokens = 1 keeps it in place), or at the end. A trigger that
    is already in the caption keeps its first place; any other copies are removed. Without a trigger the
    policy only cleans and wraps.
    """

    trigger: str | None = None
    class_word: str | None = None
    placement: Placement = "front"
    prefix: str = ""
    suffix: str = ""
    max_tokens: int = CLIP_MAX_TOKENS
    clean: bool = True
    token_counter: TokenCounter | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.placement not in ("front", "end"):
            raise ValueError(f"placement must be 'front' or 'end', not {self.placement!r}")
        if self.max_tokens < 1:
            raise ValueError("max_tokens must be at least 1")
        if self.trigger is not None and not self.trigger.strip():
            raise ValueError("the trigger word must not be blank; pass None for no trigger")

    @property
    def trigger_phrase(self) -> str:
        return trigger_phrase(self.trigger, self.class_word)

    def apply(self, raw_caption: str | None, *, tags: Sequence[str] = ()) -> PolicyResult:
        """The training caption for one raw caption, with length and emptiness warnings. `tags` (what
        curation saw, e.g. "black and white photo") follow the caption unless it says them already."""
        warnings: list[str] = []
        body = clean_caption(raw_caption or "") if self.clean else tidy_punctuation(raw_caption or "")
        if not body and not _PLACEHOLDER.search(self.prefix + self.suffix):
            warnings.append("the captioner returned no usable text")
        missing = [tag for tag in tags if tag.strip() and tag.casefold() not in body.casefold()]
        text = join_parts([self.prefix, body, *missing, self.suffix])
        text = self._place_trigger(text)
        if not text:
            warnings.append("the caption is empty")
        tokens = self._count_tokens(text)
        if tokens > self.max_tokens:
            warnings.append(
                f"caption is {tokens} tokens, over the text encoder's limit of {self.max_tokens}; "
                "the end will be cut off in training"
            )
        return PolicyResult(text=text, warnings=tuple(warnings))

    def apply_many(self, raw_captions: list[str]) -> list[PolicyResult]:
        return [self.apply(raw) for raw in raw_captions]

    def _count_tokens(self, text: str) -> int:
        counter = self.token_counter or clip_token_count
        return counter(text)

    def _place_trigger(self, text: str) -> str:
        if not self.trigger:
            return tidy_punctuation(_PLACEHOLDER.sub(" ", text))
        phrase = self.trigger_phrase
        trigger_re = _phrase_pattern(self.trigger)
        found = trigger_re.search(text)
        if found:
            text = _PLACEHOLDER.sub(" ", text)
            return self._keep_first_trigger(text)
        if _PLACEHOLDER.search(text):
            first = True

            def substitute(_: re.Match[str]) -> str:
                nonlocal first
                replacement, first = (phrase if first else " "), False
                return replacement

            return tidy_punctuation(_PLACEHOLDER.sub(substitute, text))
        parts = [phrase, text] if self.placement == "front" else [text, phrase]
        return join_parts(parts)

    def _keep_first_trigger(self, text: str) -> str:
        assert self.trigger is not None
        occurrence = _phrase_pattern(self.trigger, self.class_word)
        first = occurrence.search(text)
        assert first is not None
        head = text[: first.start()]
        tail = occurrence.sub(" ", text[first.end() :])
        # Copies removed from the middle leave ", ," or "of ," behind; tidy_punctuation mends those.
        return tidy_punctuation(f"{head}{self.trigger_phrase}{tail}")


def _nfc(text: str) -> str:
    return " ".join(unicodedata.normalize("NFC", text).split())


def _phrase_pattern(trigger: str, class_word: str | None = None) -> re.Pattern[str]:
    """Whole-phrase, case-insensitive match of the trigger, optionally swallowing a following class word."""
    words = r"\s+".join(re.escape(word) for word in _nfc(trigger).split())
    if class_word and class_word.strip():
        class_words = r"\s+".join(re.escape(word) for word in _nfc(class_word).split())
        words += rf"(?:\s+{class_words})?"
    return re.compile(rf"(?<!\w){words}(?!\w)", re.IGNORECASE)
