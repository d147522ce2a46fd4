"""Trigger-word placement, prefixes, placeholders and length warnings of CaptionPolicy."""

from __future__ import annotations

import re

import pytest

from loraforge.captioning import CaptionPolicy, approximate_token_count, max_tokens_for
from loraforge.captioning.policy import trigger_phrase


def policy(**options: object) -> CaptionPolicy:
    options.setdefault("trigger", "ohwx")
    options.setdefault("token_counter", approximate_token_count)
    return CaptionPolicy(**options)  # type: ignore[arg-type]


def count(text: str, phrase: str) -> int:
    return len(re.findall(rf"(?<!\w){re.escape(phrase)}(?!\w)", text, flags=re.IGNORECASE))


def test_trigger_and_class_word_go_in_front_once() -> None:
    result = policy(class_word="woman").apply("a woman standing in a park")
    assert result.text == "ohwx woman, a woman standing in a park"
    assert result.warnings == ()


def test_trigger_at_the_end() -> None:
    assert policy(placement="end").apply("a dog on a sofa.").text == "a dog on a sofa, ohwx"


def test_trigger_already_present_twice_keeps_first_place_only() -> None:
    text = policy(class_word="woman").apply("ohwx woman at the beach, OHWX woman smiling, ohwx").text
    assert text == "ohwx woman at the beach, smiling"
    assert count(text, "ohwx") == 1


def test_trigger_present_without_class_word_gets_it_in_place() -> None:
    text = policy(class_word="man").apply("a photo of OHWX on a bike").text
    assert text == "a photo of ohwx man on a bike"


def test_trigger_inside_another_word_does_not_count() -> None:
    text = policy().apply("ohwxy and xohwx stand there").text
    assert text.startswith("ohwx, ")
    assert count(text, "ohwx") == 1


def test_multi_word_trigger_matches_across_spacing() -> None:
    text = policy(trigger="zwx style").apply("a castle in ZWX   style, zwx style again").text
    assert count(text, "zwx style") == 1
    assert text.startswith("a castle in zwx style")


def test_placeholder_in_caption_takes_the_trigger_phrase() -> None:
    result = policy(class_word="dog").apply("photo of [trigger] running, [Trigger] jumping")
    assert result.text == "photo of ohwx dog running, jumping"


def test_placeholder_in_prefix() -> None:
    text = policy(prefix="a photo of [trigger],").apply("smiling at the camera.").text
    assert text == "a photo of ohwx, smiling at the camera."


def test_placeholder_removed_when_trigger_already_present() -> None:
    text = policy().apply("[trigger] ohwx in a field").text
    assert text == "ohwx in a field"


def test_placeholder_without_trigger_is_dropped() -> None:
    assert CaptionPolicy(token_counter=approximate_token_count).apply("[trigger], a cat.").text == "a cat."


@pytest.mark.parametrize("raw", ["", "   ", None, " . , ", "arafed", "<pad></s>"])
def test_empty_caption_gives_trigger_and_class(raw: str | None) -> None:
    result = policy(class_word="woman").apply(raw)
    assert result.text == "ohwx woman"
    assert any("no usable text" in warning for warning in result.warnings)


def test_prefix_and_suffix_wrap_the_caption() -> None:
    text = policy(prefix="photo", suffix="high quality.").apply("a cat on a mat.").text
    assert text == "ohwx, photo, a cat on a mat, high quality."


def test_no_trigger_only_cleans() -> None:
    result = CaptionPolicy(token_counter=approximate_token_count).apply("arafed man  with a hat .")
    assert result.text == "man with a hat."


def test_unicode_trigger_and_caption() -> None:
    text = policy(trigger="Zoë", class_word="chat").apply("un chat près d'un café, zoë dort").text
    assert text == "un chat près d'un café, Zoë chat dort"


def test_long_caption_warns_with_counts() -> None:
    words = " ".join(f"word{i}" for i in range(40))
    result = policy(max_tokens=20).apply(words)
    assert len(result.warnings) == 1
    assert "limit of 20" in result.warnings[0]


def test_short_caption_has_no_length_warning() -> None:
    assert policy(max_tokens=77).apply("a cat").warnings == ()


def test_policy_rejects_bad_options() -> None:
    with pytest.raises(ValueError, match="placement"):
        CaptionPolicy(trigger="x", placement="middle")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="blank"):
        CaptionPolicy(trigger="  ")


def test_max_tokens_by_target() -> None:
    assert max_tokens_for("sd15") == 77
    assert max_tokens_for("sdxl") == 77
    assert max_tokens_for("flux") == 512
    with pytest.raises(ValueError, match="unknown target"):
        max_tokens_for("sd3")


def test_apply_many_keeps_order() -> None:
    texts = [r.text for r in policy().apply_many(["a cat", "a dog"])]
    assert texts == ["ohwx, a cat", "ohwx, a dog"]


def test_decomposed_unicode_trigger_matches_composed_caption() -> None:
    decomposed = "Zoe\u0308"
    text = policy(trigger=decomposed).apply("zo\u00eb in the garden").text
    assert text == "Zo\u00eb in the garden"


@pytest.mark.parametrize(
    ("trigger", "class_word", "phrase"),
    [
        ("ohwx", "woman", "ohwx woman"),
        ("ohwx woman", "woman", "ohwx woman"),
        ("ohwx Woman", "woman", "ohwx Woman"),
        ("ohwx", "old man", "ohwx old man"),
        ("ohwx old man", "old man", "ohwx old man"),
        ("ohwx man", "old man", "ohwx man old man"),
        ("ohwx", None, "ohwx"),
        (None, "woman", ""),
    ],
)
def test_the_trigger_phrase_holds_the_class_word_once(
    trigger: str | None, class_word: str | None, phrase: str
) -> None:
    assert trigger_phrase(trigger, class_word) == phrase


def test_a_trigger_ending_in_the_class_word_is_not_doubled_in_captions() -> None:
    policy = CaptionPolicy(trigger="ohwx woman", class_word="woman", token_counter=approximate_token_count)
    assert policy.apply("a woman on a beach").text == "ohwx woman, a woman on a beach"
    assert policy.apply("[trigger] on a beach").text == "ohwx woman on a beach"
    assert policy.apply("ohwx woman woman smiling").text == "ohwx woman smiling"
