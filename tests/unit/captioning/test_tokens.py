"""Token counting with CLIP's BPE (shipped inside open_clip) and the offline approximation."""

from __future__ import annotations

from loraforge.captioning import CaptionPolicy, approximate_token_count, clip_token_count


def test_clip_count_includes_start_and_end_tokens() -> None:
    assert clip_token_count("a photo of a cat") == 7
    assert clip_token_count("") == 2


def test_approximation_tracks_clip_on_ordinary_captions() -> None:
    caption = "ohwx woman, a woman in a red dress standing in a park at sunset, smiling, close-up photo"
    real, approx = clip_token_count(caption), approximate_token_count(caption)
    assert abs(real - approx) <= max(3, real // 5)


def test_default_policy_warns_past_77_clip_tokens() -> None:
    caption = ", ".join(f"detail number {i}" for i in range(30))
    result = CaptionPolicy(trigger="ohwx").apply(caption)
    assert any("limit of 77" in warning for warning in result.warnings)
    assert CaptionPolicy(trigger="ohwx", max_tokens=512).apply(caption).warnings == ()
