"""Caption text as it goes into .txt files: one line, the trigger word in place."""

from __future__ import annotations

import re

from loraforge.captioning.policy import trigger_phrase
from loraforge.exporters.base import ExportSpec

TRIGGER_PLACEHOLDER = "[trigger]"


def has_word(text: str, word: str) -> bool:
    """Whether `word` occurs as a whole word (case-insensitive) in `text`."""
    return re.search(rf"(?<!\w){re.escape(word)}(?!\w)", text, flags=re.IGNORECASE) is not None


def render_caption(caption: str | None, spec: ExportSpec) -> str:
    """The text written beside an image.

    `[trigger]` is replaced (ai-toolkit's convention, applied here so every trainer sees the same text), the
    caption is folded onto one line (OneTrainer reads one caption per line), and the trigger word is prepended
    when missing and spec.ensure_trigger is set. A missing caption becomes "trigger class".
    """
    text = " ".join((caption or "").split())
    trigger = spec.trigger_word
    if trigger:
        text = text.replace(TRIGGER_PLACEHOLDER, trigger)
    if not text:
        return trigger_phrase(trigger, spec.class_word) or (spec.class_word or "")
    if trigger and spec.ensure_trigger and not has_word(text, trigger):
        text = f"{trigger}, {text}"
    return text
