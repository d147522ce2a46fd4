"""Find model weights offline first (folder, model directory, HF cache, then hub); pick device and dtype."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loraforge.errors import ModelError

logger = logging.getLogger(__name__)

_PATH_PREFIXES = ("/", "./", "../", "~", ".\\")
_DTYPES = ("float32", "float16", "bfloat16")
# Formats no loader of ours reads; skipping them keeps a hub download to the weights we need.
_IGNORED_HUB_FILES = ["*.onnx", "*.msgpack", "*.h5", "*.ot", "flax_model*", "tf_model*", "*.tflite", "*.gguf"]


def hub_offline() -> bool:
    """True when the user told huggingface_hub not to use the network."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def resolve_model_path(
    ref: str | os.PathLike[str],
    *,
    model_dir: Path | None = None,
    allow_download: bool = True,
    hub_endpoint: str | None = None,
) -> Path:
    """The local folder holding model `ref`: a folder path, `<model_dir>/<hub id>`, the HF cache, or the hub.

    Raises ModelError naming the model and how to provide it when none of these has it.
    """
    text = os.fspath(ref).strip()
    if not text:
        raise ModelError("no model given: pass a hub id or a local folder")
    candidate = Path(text).expanduser()
    if candidate.is_dir():
        return candidate
    if text.startswith(_PATH_PREFIXES) or candidate.is_file():
        raise ModelError(f"model folder {text} does not exist or is not a folder")

    directory = model_dir if model_dir is not None else _settings_model_dir()
    if directory is not None:
        local = Path(directory).expanduser() / Path(*text.split("/"))
        if local.is_dir():
            return local

    cached = _from_hf_cache(text)
    if cached is not None:
        return cached

    where = f"{directory}/{text}" if directory is not None else f"LORAFORGE_MODEL_DIR/{text}"
    advice = f"download it to {where} or pass --model /path/to/{text.rsplit('/', 1)[-1]}"
    if not allow_download or hub_offline():
        raise ModelError(f"model {text} is not available offline: {advice}")
    try:
        return _download(text, hub_endpoint)
    except Exception as exc:
        reason = " ".join(str(exc).split())[:200]
        raise ModelError(f"model {text} could not be downloaded ({reason}): {advice}") from exc


def _settings_model_dir() -> Path | None:
    from loraforge.config import get_settings

    return get_settings().model_dir


def _from_hf_cache(repo_id: str) -> Path | None:
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(repo_id, local_files_only=True))
    except Exception:
        return None


def _download(repo_id: str, endpoint: str | None) -> Path:
    from huggingface_hub import snapshot_download

    logger.info("downloading model %s from the hub", repo_id)
    return Path(snapshot_download(repo_id, endpoint=endpoint, ignore_patterns=_IGNORED_HUB_FILES))


@dataclass(frozen=True)
class Placement:
    """Where a model runs: a torch device name and a dtype name."""

    device: str
    dtype: str

    @property
    def torch_dtype(self) -> Any:
        import torch

        return getattr(torch, self.dtype)


def choose_placement(device: str | None = None, dtype: str | None = None) -> Placement:
    """CUDA with half precision when a GPU is there, else CPU with float32; either may be forced."""
    import torch

    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    elif device.startswith("cuda") and not torch.cuda.is_available():
        raise ModelError(f"device {device} was requested but no CUDA GPU is available; use device='cpu'")
    if dtype is None:
        if device.startswith("cuda"):
            dtype = "bfloat16" if torch.cuda.is_bf16_supported() else "float16"
        else:
            # Half precision on CPU is slow or unsupported for many kernels.
            dtype = "float32"
    if dtype not in _DTYPES:
        raise ModelError(f"dtype {dtype!r} is not supported; use one of {', '.join(_DTYPES)}")
    return Placement(device=device, dtype=dtype)
