"""The format registry and the kohya bucket generator behind validation."""

from __future__ import annotations

import pytest

from loraforge.errors import InvalidInput
from loraforge.exporters import ExportSpec, available_formats, get_exporter
from loraforge.exporters.buckets import kohya_buckets, nearest_bucket


def test_every_format_is_registered() -> None:
    assert available_formats() == ["ai-toolkit", "hf", "kohya", "onetrainer", "replicate", "simpletuner"]
    assert get_exporter("kohya").default_repeats == 10 and get_exporter("simpletuner").default_repeats == 1
    with pytest.raises(InvalidInput, match="known: ai-toolkit"):
        get_exporter("dreambooth")


def test_kohya_bucket_counts_match_formats_notes() -> None:
    sdxl = kohya_buckets(1024, min_reso=256, max_reso=2048, step=64)
    assert len(sdxl) == 41 and (1024, 1024) in sdxl and (1216, 832) in sdxl and (832, 1216) in sdxl
    assert len(kohya_buckets(512, min_reso=256, max_reso=1024, step=64)) == 17
    assert nearest_bucket(1920, 1080, sdxl) == (1344, 768)


def test_spec_fills_model_defaults_and_refuses_bad_words() -> None:
    sd15 = ExportSpec(format="kohya", target_model="sd15")
    defaults = (sd15.resolution, sd15.bucket_step, sd15.max_bucket_reso, sd15.max_caption_tokens)
    assert defaults == (512, 64, 1024, 77)
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
