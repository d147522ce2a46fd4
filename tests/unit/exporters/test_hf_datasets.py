"""The hf export loads with the `datasets` library's own ImageFolder builder, offline."""

from __future__ import annotations

from pathlib import Path

import pytest
from exporter_factories import make_spec, six_items

from loraforge.exporters import DirectorySink, export_dataset


def test_hf_export_loads_with_datasets_imagefolder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    import datasets

    items = six_items()
    root = tmp_path / "export"
    export_dataset(items, make_spec("hf"), sink=DirectorySink(root))
    loaded = datasets.load_dataset("imagefolder", data_dir=str(root), cache_dir=str(tmp_path / "cache"))
    train = loaded["train"]
    assert train.num_rows == 6
    assert {"image", "text", "prompt"} <= set(train.column_names)
    sizes = sorted(row["image"].size for row in train)
    assert sizes == sorted((item.width, item.height) for item in items)
    assert all(text.startswith("ohwx") for text in train["text"])
