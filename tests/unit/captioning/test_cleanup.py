"""Clean-up of captioner artefacts, repeats and stray punctuation."""

from __future__ import annotations

import pytest

from loraforge.captioning.cleanup import (
    clean_caption,
    collapse_repeated_words,
    dedupe_comma_phrases,
    join_parts,
    tidy_punctuation,
)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("arafed woman standing in a park", "woman standing in a park"),
        ("a araffe man with a hat", "a man with a hat"),
        ("an arafed woman with a hat", "a woman with a hat"),
        ("a arafed old man", "an old man"),
        ("there is a cat on the sofa", "a cat on the sofa"),
        ("There are two dogs playing", "two dogs playing"),
        ("the image shows a red car", "a red car"),
        ("This is an image of a lighthouse.", "a lighthouse."),
        ("a picture of a bowl of fruit", "a bowl of fruit"),
        ("In this image, a boy runs", "a boy runs"),
        ("a man holding a picture of his dog", "a man holding a picture of his dog"),
        ("a photo of a tower", "a photo of a tower"),
    ],
)
def test_artefacts_and_openers(raw: str, expected: str) -> None:
    assert clean_caption(raw) == expected


def test_opener_after_a_sentence_stop_is_removed_too() -> None:
    assert clean_caption("a dog. the image shows a cat.") == "a dog. a cat."


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("a woman woman standing", "a woman standing"),
        ("in a park in a park in a park", "in a park"),
        ("a cat sitting on a bench sitting on a bench.", "a cat sitting on a bench."),
        ("The the dog", "The dog"),
        ("one two three", "one two three"),
    ],
)
def test_repeats_collapse(raw: str, expected: str) -> None:
    assert collapse_repeated_words(raw) == expected


def test_comma_phrases_dedupe_case_insensitively() -> None:
    assert dedupe_comma_phrases("red dress, smiling, Red Dress, outdoors") == "red dress, smiling, outdoors"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("a cat  ,  on a mat .", "a cat, on a mat."),
        ("a cat,, on a mat...", "a cat, on a mat."),
        (", a cat ,", "a cat"),
        ("a cat , .", "a cat."),
        ("a cat., a dog", "a cat, a dog"),
        ("a,b", "a, b"),
        ("3,5 metres", "3,5 metres"),
        ("", ""),
    ],
)
def test_tidy_punctuation(raw: str, expected: str) -> None:
    assert tidy_punctuation(raw) == expected


def test_special_tokens_and_invisible_characters_disappear() -> None:
    assert clean_caption("<s>a\u200b cat</s><pad><pad> [UNK] sitting") == "a cat sitting"


def test_unicode_text_survives_and_is_normalised() -> None:
    assert clean_caption("cafe\u0301 au lait") == "caf\u00e9 au lait"
    assert clean_caption("一只猫 , 坐在 垫子上") == "一只猫, 坐在 垫子上"


def test_join_parts_drops_empty_and_inner_stops() -> None:
    assert join_parts(["ohwx", "", "a cat.", "  ", "4k."]) == "ohwx, a cat, 4k."
    assert join_parts([]) == ""
