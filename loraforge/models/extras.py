"""What the light install lacks: the `models` extra (torch, transformers, open-clip, RetinaFace, dlib).

`pip install loraforge` runs ingest, curation, template captions, OpenCV faces, buckets and every export
without any of them. A feature that needs one says so in one line, naming the extra, before work starts.
"""

from __future__ import annotations

import importlib.util

from loraforge.errors import ConfigError

MODELS_EXTRA = "pip install 'loraforge[models]'"
TRANSFORMERS_CAPTIONERS = frozenset({"blip", "git", "florence2"})
"""Captioner kinds that run a transformers model locally."""


def installed(module: str) -> bool:
    """Whether `module` can be imported, found without importing it."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def require_models(feature: str, *modules: str) -> None:
    """Refuse `feature` in one line when a module of the models extra is missing."""
    missing = [module for module in modules if not installed(module)]
    if missing:
        raise ConfigError(
            f"{feature} needs the models extra ({', '.join(missing)} not installed): {MODELS_EXTRA}"
        )


def check_model_options(*, captioner: str | None = None, face_detector: str | None = None) -> None:
    """The options of a run that need the models extra, checked before any stage starts."""
    if captioner in TRANSFORMERS_CAPTIONERS:
        require_models(f"--captioner {captioner}", "torch", "transformers")
    if face_detector == "retinaface":
        require_models("--face-detector retinaface", "torch", "retinaface")
