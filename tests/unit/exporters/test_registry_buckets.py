"""The format registry, the spec's model defaults, and each exporter's bucket rule behind validation."""

from __future__ import annotations

import pytest

from loraforge.errors import InvalidInput
from loraforge.exporters import ExportSpec, available_formats, get_exporter
from loraforge.exporters.buckets import rule_for, trainer_rule


def test_every_format_is_registered() -> None:
    assert available_formats() == ["ai-toolkit", "hf", "kohya", "onetrainer", "replicate", "simpletuner"]
    assert get_exporter("kohya").default_repeats == 10 and get_exporter("simpletuner").default_repeats == 1
    with pytest.raises(InvalidInput, match="known: ai-toolkit"):
        get_exporter("dreambooth")


def test_kohya_rule_has_kohyas_bucket_counts_and_nearest_aspect() -> None:
    sdxl = trainer_rule("kohya", "sdxl")
    labels = sdxl.buckets().labels
    assert len(labels) == 41 and {"1024x1024", "1216x832", "832x1216"} <= set(labels)
    assert len(trainer_rule("kohya", "sd15").buckets().labels) == 17
    assert sdxl.place(1920, 1080).bucket == (1344, 768)
    assert sdxl.place(1920, 1080).resized == (1365, 768)  # scaled to cover, then 21 px cropped


def test_every_format_declares_a_rule_whose_buckets_it_keeps() -> None:
    for fmt in available_formats():
        for model in ("sd15", "sdxl", "flux"):
            rule = rule_for(ExportSpec(format=fmt, target_model=model))  # type: ignore[arg-type]
            buckets = rule.buckets().buckets
            assert buckets and all(rule.place(b.width, b.height).keeps(b.width, b.height) for b in buckets)


def test_a_kohya_step_its_script_refuses_is_refused() -> None:
    """flux_train_network.py checks bucket_reso_steps % 64 (its base class's check runs first)."""
    with pytest.raises(InvalidInput, match="multiple of 64"):
        rule_for(ExportSpec(format="kohya", target_model="flux", bucket_step=32))
    assert rule_for(ExportSpec(format="kohya", target_model="sdxl", bucket_step=32)).buckets().step == 32


def test_spec_fills_model_defaults_and_refuses_bad_words() -> None:
    sd15 = ExportSpec(format="kohya", target_model="sd15")
    defaults = (sd15.resolution, sd15.bucket_step, sd15.max_bucket_reso, sd15.max_caption_tokens)
    assert defaults == (512, 64, 1024, 77)
    smaller = ExportSpec(format="kohya", target_model="sdxl", resolution=768)
    assert (smaller.min_bucket_reso, smaller.max_bucket_reso) == (192, 1536)  # scaled as the stage does
    assert ExportSpec(format="kohya", target_model="flux").max_caption_tokens == 512
    for bad in (
        {"trigger_word": "a/b"},
        {"class_word": " "},
        {"target_model": "sd3"},
        {"repeats": 0},
        {"name": "../x"},
    ):
        with pytest.raises(InvalidInput):
            ExportSpec(format="kohya", **bad)  # type: ignore[arg-type]
