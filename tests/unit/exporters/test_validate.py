"""Validation finds each kind of problem; strict mode refuses; clean data passes."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from exporter_factories import make_item, make_spec

from loraforge.errors import InvalidInput
from loraforge.exporters import DirectorySink, export_dataset, validate


def clean_items() -> list:
    return [make_item(i, size=(1024, 1024), bucket=(1024, 1024)) for i in range(4)]


def test_clean_dataset_has_no_problems() -> None:
    report = validate(clean_items(), make_spec("kohya", batch_size=2))
    assert report.problems == [] and report.ok
    assert "no problems" in report.summary()


def test_missing_caption_is_an_error() -> None:
    report = validate(
        [*clean_items(), make_item(9, caption=None), make_item(10, caption="  ")], make_spec("kohya")
    )
    assert {p.image_id for p in report.by_check("missing_caption")} == {"img-9", "img-10"}
    assert not report.ok


def test_missing_trigger_warns_when_prepended_and_errs_otherwise() -> None:
    items = [
        *clean_items(),
        make_item(9, caption="a man on a beach"),
        make_item(10, caption="[trigger] smiling"),
    ]
    (warned,) = validate(items, make_spec("kohya")).by_check("missing_trigger")
    assert warned.image_id == "img-9" and warned.severity == "warning"
    (erred,) = validate(items, make_spec("kohya", ensure_trigger=False)).by_check("missing_trigger")
    assert erred.severity == "error"


def test_long_caption_uses_given_token_counter() -> None:
    items = [*clean_items(), make_item(9, caption="ohwx " + "word " * 100)]
    report = validate(items, make_spec("kohya"))
    assert [p.image_id for p in report.by_check("caption_too_long")] == ["img-9"]
    assert validate(items, make_spec("kohya"), tokens=lambda text: 3).by_check("caption_too_long") == []
    assert validate(items, make_spec("kohya", target_model="flux")).by_check("caption_too_long") == []


def test_small_buckets_warn_for_batch_size() -> None:
    items = [*clean_items(), make_item(9, size=(1344, 768), bucket=(1344, 768))]
    (problem,) = validate(items, make_spec("simpletuner", batch_size=2)).by_check("small_bucket")
    assert "1344x768" in problem.message and "img-9" in problem.message
    assert validate(items, make_spec("simpletuner", batch_size=1)).by_check("small_bucket") == []


def test_small_bucket_uses_nearest_bucket_when_unassigned() -> None:
    items = [make_item(i, size=(1200, 800)) for i in range(3)]
    assert validate(items, make_spec("kohya", batch_size=3)).by_check("small_bucket") == []
    assert len(validate(items, make_spec("kohya", batch_size=4)).by_check("small_bucket")) == 1


def test_images_smaller_than_target_are_flagged_as_upscaled() -> None:
    items = [
        *clean_items(),
        make_item(9, size=(512, 512)),
        make_item(10, size=(800, 1200), bucket=(832, 1216)),
    ]
    flagged = {p.image_id for p in validate(items, make_spec("kohya")).by_check("upscaled")}
    assert flagged == {"img-9", "img-10"}
    assert (
        validate([make_item(9, size=(512, 512))], make_spec("kohya", target_model="sd15")).by_check(
            "upscaled"
        )
        == []
    )


def test_rejected_duplicate_and_colliding_items_are_errors() -> None:
    base = clean_items()
    items = [*base, make_item(7, status="rejected"), make_item(8, status="duplicate"), base[0]]
    report = validate(items, make_spec("kohya"))
    assert {p.image_id for p in report.by_check("excluded_image")} == {"img-7", "img-8"}
    assert report.by_check("duplicate_image") and report.by_check("duplicate_stem")
    assert not report.ok
    assert "excluded_image" in report.summary()
    (pending,) = validate([make_item(1, status="pending")], make_spec("kohya")).problems
    assert pending.check == "uncurated" and pending.severity == "info"


def test_strict_refuses_and_lists_problems(tmp_path: Path) -> None:
    items = [*clean_items(), make_item(9, caption=None)]
    with pytest.raises(InvalidInput, match="missing_caption"):
        validate(items, make_spec("kohya"), strict=True)
    with pytest.raises(InvalidInput, match="img-9"):
        export_dataset(items, make_spec("kohya"), sink=DirectorySink(tmp_path / "out"), strict=True)
    assert not any((tmp_path / "out").iterdir())


def test_non_strict_export_carries_problems_as_warnings(tmp_path: Path) -> None:
    items = [*clean_items(), make_item(9, caption=None)]
    result = export_dataset(items, make_spec("kohya"), sink=DirectorySink(tmp_path / "out"))
    assert any("missing_caption" in w and "img-9" in w for w in result.warnings)
    assert result.image_count == 5


def test_unreadable_image_is_skipped_with_a_warning(tmp_path: Path) -> None:
    good = clean_items()

    def broken() -> bytes:
        raise OSError("object store timed out")

    bad = dataclasses.replace(make_item(9), read=broken)
    result = export_dataset([*good, bad], make_spec("replicate"), sink=DirectorySink(tmp_path / "out"))
    assert result.image_count == 4
    assert any("img-9" in w and "timed out" in w for w in result.warnings)
    assert not list((tmp_path / "out").glob(f"{bad.stem}.*"))
