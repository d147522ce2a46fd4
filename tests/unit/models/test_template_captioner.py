"""The template captioner fills trigger, class word and tags without a model."""

from __future__ import annotations

import pytest
from PIL import Image

from loraforge.captioning import CaptionPolicy, approximate_token_count
from loraforge.errors import InvalidInput
from loraforge.models.captioners import build_captioner
from loraforge.models.captioners.template import TAGS_INFO_KEY


def test_template_fills_fields() -> None:
    captioner = build_captioner(
        "template",
        template="photo of {trigger} {class_word}, {tags}",
        trigger="ohwx",
        class_word="dog",
        tags=["grass", " ", "sunny"],
    )
    assert captioner.caption_batch([Image.new("RGB", (8, 8))] * 2) == ["photo of ohwx dog, grass, sunny"] * 2


def test_per_image_tags_replace_fixed_ones() -> None:
    image = Image.new("RGB", (8, 8))
    image.info[TAGS_INFO_KEY] = ["beach"]
    captioner = build_captioner("template", template="{trigger}, {tags}", trigger="ohwx", tags=["grass"])
    assert captioner.caption_batch([image, Image.new("RGB", (8, 8))]) == ["ohwx, beach", "ohwx, grass"]


def test_missing_trigger_leaves_a_placeholder_the_policy_fills() -> None:
    raw = build_captioner("template", prompt="a {class_word} photo of {trigger}, {tags}", class_word="cat")
    text = raw.caption_batch([Image.new("RGB", (8, 8))])[0]
    assert text == "a cat photo of [trigger]"
    final = CaptionPolicy(trigger="zxq", token_counter=approximate_token_count).apply(text).text
    assert final == "a cat photo of zxq"


@pytest.mark.parametrize("template", ["{subject} here", "{trigger", "{0}"])
def test_bad_templates_are_rejected(template: str) -> None:
    with pytest.raises(InvalidInput, match="template"):
        build_captioner("template", template=template)


@pytest.mark.parametrize(
    ("trigger", "class_word", "expected"),
    [
        ("ohwx", "woman", "ohwx woman, a photo"),
        ("ohwx woman", "woman", "ohwx woman, a photo"),  # the class word once, not "ohwx woman woman"
        ("ohwx", None, "ohwx, a photo"),
        (None, "woman", "a photo of a woman"),
        (None, None, "a photo"),
    ],
)
def test_the_default_template_puts_the_trigger_first_and_leaves_no_empty_phrase(
    trigger: str | None, class_word: str | None, expected: str
) -> None:
    # The caption stage gives the template the class word only without a trigger (the policy places it).
    captioner = build_captioner("template", class_word=None if trigger else class_word)
    policy = CaptionPolicy(trigger=trigger, class_word=class_word, token_counter=approximate_token_count)
    [raw] = captioner.caption_batch([Image.new("RGB", (8, 8))])
    assert policy.apply(raw).text == expected
    tagged = Image.new("RGB", (8, 8))
    tagged.info[TAGS_INFO_KEY] = ["black and white photo"]
    [raw_tagged] = captioner.caption_batch([tagged])
    assert policy.apply(raw_tagged).text == f"{expected}, black and white photo"
    assert not policy.apply(raw).text.endswith(" of")
