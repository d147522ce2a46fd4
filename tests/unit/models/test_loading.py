"""Model lookup order (folder, model directory, HF cache, hub) and automatic device/dtype choice."""

from __future__ import annotations

from pathlib import Path

import pytest

from loraforge.errors import ModelError
from loraforge.models.loading import choose_placement, resolve_model_path
from tests.support.fake_openai import closed_port


def weights_folder(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "config.json").write_text("{}")
    return root


@pytest.fixture(autouse=True)
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def test_a_folder_is_used_as_is(tmp_path: Path) -> None:
    folder = weights_folder(tmp_path / "my-blip")
    assert resolve_model_path(str(folder)) == folder
    assert resolve_model_path(folder) == folder


def test_a_missing_folder_path_is_named(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="does not exist"):
        resolve_model_path(str(tmp_path / "nope"))
    with pytest.raises(ModelError, match="no model given"):
        resolve_model_path("  ")


def test_hub_id_under_model_dir_keeps_slashes_as_folders(tmp_path: Path) -> None:
    folder = weights_folder(tmp_path / "Salesforce" / "blip-image-captioning-large")
    assert resolve_model_path("Salesforce/blip-image-captioning-large", model_dir=tmp_path) == folder


def test_model_dir_comes_from_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from loraforge.config import get_settings

    folder = weights_folder(tmp_path / "org" / "model")
    monkeypatch.setenv("LORAFORGE_MODEL_DIR", str(tmp_path))
    get_settings.cache_clear()
    try:
        assert resolve_model_path("org/model") == folder
    finally:
        get_settings.cache_clear()


def test_hf_cache_snapshot_is_found(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from huggingface_hub import constants

    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "models--org--cached-model"
    snapshot = weights_folder(repo / "snapshots" / commit)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    assert resolve_model_path("org/cached-model", model_dir=tmp_path / "empty") == snapshot


def test_missing_model_offline_says_how_to_provide_it(tmp_path: Path) -> None:
    with pytest.raises(ModelError) as raised:
        resolve_model_path("org/absent-model", model_dir=tmp_path)
    message = str(raised.value)
    assert "org/absent-model" in message
    assert str(tmp_path / "org" / "absent-model") in message
    assert "--model" in message


def test_failed_download_is_one_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HF_HUB_OFFLINE")
    endpoint = f"http://127.0.0.1:{closed_port()}"
    with pytest.raises(ModelError, match="org/absent-model could not be downloaded") as raised:
        resolve_model_path("org/absent-model", model_dir=tmp_path, hub_endpoint=endpoint)
    assert str(tmp_path / "org" / "absent-model") in str(raised.value)
    assert "\n" not in str(raised.value)


def test_download_can_be_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HF_HUB_OFFLINE")
    with pytest.raises(ModelError, match="not available offline"):
        resolve_model_path("org/absent-model", model_dir=tmp_path, allow_download=False)


def test_cpu_gets_float32(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    placement = choose_placement()
    assert (placement.device, placement.dtype) == ("cpu", "float32")
    assert placement.torch_dtype is torch.float32


def test_gpu_gets_half_precision(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: False)
    assert choose_placement() == choose_placement("cuda")
    assert choose_placement().dtype == "float16"
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: True)
    assert choose_placement().dtype == "bfloat16"
    assert choose_placement("cpu").dtype == "float32"


def test_explicit_dtype_and_bad_dtype() -> None:
    assert choose_placement("cpu", "bfloat16").dtype == "bfloat16"
    with pytest.raises(ModelError, match="int8"):
        choose_placement("cpu", "int8")
