"""A captioner without a model: every caption is a format string filled with trigger, class word and tags."""

from __future__ import annotations

import string
from collections.abc import Sequence
from typing import TYPE_CHECKING

from loraforge.captioning.cleanup import tidy_punctuation
from loraforge.captioning.policy import PLACEHOLDER
from loraforge.errors import InvalidInput
from loraforge.models.captioners.base import register_captioner

if TYPE_CHECKING:
    from PIL import Image

FIELDS = frozenset({"trigger", "class_word", "tags"})
DEFAULT_TEMPLATE = "a photo, {tags}"
"""The caption policy puts the trigger phrase first: "ohwx woman, a photo" (then any tags)."""
DEFAULT_TEMPLATE_NO_TRIGGER = "a photo of a {class_word}, {tags}"
"""Without a trigger the class word (when given) says what the photo shows: "a photo of a woman"."""
TAGS_INFO_KEY = "loraforge_tags"
"""Per-image tags can ride on `image.info[TAGS_INFO_KEY]` (a list of str); they replace the fixed tags."""


@register_captioner("template")
class TemplateCaptioner:
    """Fills `template` per image. A missing trigger becomes the `[trigger]` placeholder the policy fills; the
    default template names no trigger, so the policy puts it first. No default leaves a dangling "of"."""

    name = "template"

    def __init__(
        self,
        *,
        model: str | None = None,
        prompt: str | None = None,
        device: str | None = None,
        template: str | None = None,
        trigger: str | None = None,
        class_word: str | None = None,
        tags: Sequence[str] = (),
    ) -> None:
        default = DEFAULT_TEMPLATE_NO_TRIGGER if class_word and not trigger else DEFAULT_TEMPLATE
        self.template = template or prompt or default
        self.model_ref = "template"
        self.trigger = trigger
        self.class_word = class_word
        self.tags = tuple(tags)
        try:
            fields = {name for _, name, _, _ in string.Formatter().parse(self.template) if name is not None}
        except ValueError as exc:
            raise InvalidInput(f"caption template {self.template!r} is malformed: {exc}") from exc
        unknown = sorted(fields - FIELDS)
        if unknown:
            known = ", ".join(sorted(FIELDS))
            raise InvalidInput(f"caption template uses unknown field(s) {', '.join(unknown)}; known: {known}")

    def load(self) -> None:
        """Nothing to load."""

    def caption_batch(self, images: list[Image.Image]) -> list[str]:
        return [self.render(image.info.get(TAGS_INFO_KEY, self.tags)) for image in images]

    def render(self, tags: Sequence[str] = ()) -> str:
        text = self.template.format(
            trigger=self.trigger or PLACEHOLDER,
            class_word=self.class_word or "",
            tags=", ".join(tag.strip() for tag in tags if tag.strip()),
        )
        return tidy_punctuation(text)
