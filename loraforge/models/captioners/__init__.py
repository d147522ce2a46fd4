"""Pluggable captioners behind one protocol; importing this package registers every built-in kind."""

from loraforge.models.captioners import blip, florence2, git, openai_api, template  # noqa: F401 (registers)
from loraforge.models.captioners.base import (
    Captioner,
    CaptionOutcome,
    build_captioner,
    caption_images,
    captioner_kinds,
    register_captioner,
)

__all__ = [
    "CaptionOutcome",
    "Captioner",
    "build_captioner",
    "caption_images",
    "captioner_kinds",
    "register_captioner",
]
