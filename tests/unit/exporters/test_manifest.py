"""Manifests: canonical, complete, and diffs that ignore ids and times but see content and settings."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime
from pathlib import Path

from exporter_factories import make_item, make_spec, six_items

from loraforge.exporters import (
    DatasetInfo,
    ExportSpec,
    ZipSink,
    build_manifest,
    canonical_json,
    diff_manifests,
    export_dataset,
)
from loraforge.exporters.base import ExportItem


def manifest_of(tmp_path: Path, name: str, items: list[ExportItem], spec: ExportSpec) -> dict:
    result = export_dataset(items, spec, sink=ZipSink(tmp_path / f"{name}.zip"))
    info = DatasetInfo(dataset_id=f"ds-{name}", name="alice", trigger_word="ohwx", target_model="sdxl")
    return build_manifest(f"exp-{name}", info, spec, result.files, datetime.now(UTC))


def test_manifest_lists_every_file_with_source_and_settings(tmp_path: Path) -> None:
    items = six_items()
    manifest = manifest_of(tmp_path, "a", items, make_spec("kohya"))
    assert manifest["format"] == "kohya" and manifest["settings"]["trigger_word"] == "ohwx"
    assert manifest["settings"]["resolution"] == 1024 and manifest["dataset"]["name"] == "alice"
    images = [f for f in manifest["files"] if f["name"].endswith((".jpg", ".png"))]
    assert {f["source_image_id"] for f in images} == {item.image_id for item in items}
    assert all(len(f["sha256"]) == 64 and len(f["caption_sha256"]) == 64 for f in images)
    assert manifest["totals"]["images"] == 6 and manifest["totals"]["files"] == 13
    assert [f["name"] for f in manifest["files"]] == sorted(f["name"] for f in manifest["files"])


def test_canonical_json_is_stable_and_parseable(tmp_path: Path) -> None:
    manifest = manifest_of(tmp_path, "a", six_items(), make_spec("hf"))
    text = canonical_json(manifest)
    assert json.loads(text) == manifest
    assert canonical_json(json.loads(text)) == text and "\n" not in text and ": " not in text


def test_same_data_exported_twice_is_identical(tmp_path: Path) -> None:
    a = manifest_of(tmp_path, "a", six_items(), make_spec("kohya"))
    b = manifest_of(tmp_path, "b", six_items(), make_spec("kohya"))
    assert a["export_id"] != b["export_id"]
    assert diff_manifests(a, b).identical


def test_diff_lists_added_removed_changed_files_and_settings(tmp_path: Path) -> None:
    items = six_items()
    recaptioned = dataclasses.replace(items[1], caption="ohwx person laughing")
    a = manifest_of(tmp_path, "a", items[:5], make_spec("replicate"))
    b = manifest_of(
        tmp_path,
        "b",
        [items[0], recaptioned, *items[2:4], make_item(40)],
        make_spec("replicate", resolution=768),
    )
    diff = diff_manifests(a, b)
    assert not diff.identical
    assert diff.added == sorted([f"{make_item(40).stem}.jpg", f"{make_item(40).stem}.txt"])
    assert diff.removed == sorted([f"{items[4].stem}.png", f"{items[4].stem}.txt"])
    assert diff.changed == [f"{items[1].stem}.txt"]
    # The bucket limits follow the resolution, as the bucket stage scales them.
    assert diff.settings_changed == {
        "resolution": (1024, 768),
        "min_bucket_reso": (256, 192),
        "max_bucket_reso": (2048, 1536),
    }


def test_manifest_read_back_from_json_still_diffs_identical(tmp_path: Path) -> None:
    spec = make_spec("kohya", bucket_step=32, options={"note": "x"})
    fresh = manifest_of(tmp_path, "a", six_items(), spec)
    stored = json.loads(canonical_json(manifest_of(tmp_path, "b", six_items(), spec)))
    assert diff_manifests(fresh, stored).identical
