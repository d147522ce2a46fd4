"""Face detectors behind one small protocol: OpenCV's bundled Haar cascade and RetinaFace (ResNet-50)."""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from loraforge.errors import InvalidInput, ModelError

if TYPE_CHECKING:
    from PIL import Image

logger = logging.getLogger(__name__)

RETINAFACE_WEIGHTS_NAME = "retinaface_resnet50_2020-07-20.pth"
RETINAFACE_MODEL_NAME = "resnet50_2020-07-20"


@dataclass(frozen=True)
class FaceBox:
    """A detected face in the pixel coordinates of the picture it was found in (after EXIF orientation)."""

    x0: float
    y0: float
    x1: float
    y1: float
    score: float
    landmarks: list[tuple[float, float]] | None = None

    @property
    def width(self) -> float:
        return self.x1 - self.x0

    @property
    def height(self) -> float:
        return self.y1 - self.y0

    @property
    def area(self) -> float:
        return max(0.0, self.width) * max(0.0, self.height)

    def expanded(self, margin: float, width: int, height: int) -> tuple[float, float, float, float]:
        """The box grown by `margin` times its size on every side, clamped to the picture."""
        dx, dy = self.width * margin, self.height * margin
        return (
            max(0.0, self.x0 - dx),
            max(0.0, self.y0 - dy),
            min(float(width), self.x1 + dx),
            min(float(height), self.y1 + dy),
        )


@runtime_checkable
class FaceDetector(Protocol):
    def detect(self, images: list[Image.Image]) -> list[list[FaceBox]]:
        """One list of faces per input picture, in that picture's pixel coordinates."""


DetectorFactory = Callable[..., FaceDetector]
_DETECTORS: dict[str, DetectorFactory] = {}


def register_detector(name: str) -> Callable[[DetectorFactory], DetectorFactory]:
    def decorator(factory: DetectorFactory) -> DetectorFactory:
        _DETECTORS[name] = factory
        return factory

    return decorator


def detector_names() -> list[str]:
    return sorted(_DETECTORS)


def build_face_detector(
    kind: str,
    *,
    weights: str | Path | None = None,
    device: str | None = None,
    max_size: int = 1024,
    allow_download: bool = True,
) -> FaceDetector:
    """Build a registered detector; `weights` is a checkpoint path for detectors that need one."""
    try:
        factory = _DETECTORS[kind]
    except KeyError:
        raise InvalidInput(
            f"unknown face detector {kind!r}; choose one of {', '.join(detector_names())}"
        ) from None
    return factory(weights=weights, device=device, max_size=max_size, allow_download=allow_download)


def default_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


@register_detector("opencv")
class OpenCVHaarDetector:
    """OpenCV's frontal-face Haar cascade: no download, fast on CPU, frontal faces only."""

    def __init__(self, *, max_size: int = 1024, min_neighbors: int = 5, **_: Any) -> None:
        import cv2

        path = Path(cv2.data.haarcascades) / "haarcascade_frontalface_default.xml"  # type: ignore[attr-defined]
        self._cascade = cv2.CascadeClassifier(str(path))
        if self._cascade.empty():
            raise ModelError(f"OpenCV could not load its Haar cascade from {path} (OpenCV 5 ships none)")
        self.max_size = max_size
        self.min_neighbors = min_neighbors

    def detect(self, images: list[Image.Image]) -> list[list[FaceBox]]:
        return [self._detect_one(image) for image in images]

    def _detect_one(self, image: Image.Image) -> list[FaceBox]:
        import cv2
        import numpy as np

        scale = min(1.0, self.max_size / max(image.size))
        small = image.convert("L")
        if scale < 1.0:
            small = small.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))))
        gray = cv2.equalizeHist(np.asarray(small, dtype=np.uint8))
        min_side = max(20, round(min(gray.shape) * 0.05))
        rects, neighbours = self._cascade.detectMultiScale2(
            gray, scaleFactor=1.1, minNeighbors=self.min_neighbors, minSize=(min_side, min_side)
        )
        faces = []
        for (x, y, w, h), count in zip(
            np.asarray(rects).reshape(-1, 4), np.asarray(neighbours).ravel(), strict=True
        ):
            # Neighbour count is the cascade's only confidence signal; squash it into 0..1.
            score = 1.0 - math.exp(-float(count) / (2.0 * self.min_neighbors))
            x0, y0, x1, y1 = (float(v) / scale for v in (x, y, x + w, y + h))
            faces.append(FaceBox(x0, y0, x1, y1, score=score, landmarks=None))
        return sorted(faces, key=lambda f: (-f.area, f.x0, f.y0))


@register_detector("retinaface")
class RetinaFaceDetector:
    """RetinaFace ResNet-50 (retinaface-pytorch): weights from a local checkpoint, else a download."""

    def __init__(
        self,
        *,
        weights: str | Path | None = None,
        device: str | None = None,
        max_size: int = 1024,
        allow_download: bool = True,
        confidence_threshold: float = 0.7,
        nms_threshold: float = 0.4,
        **_: Any,
    ) -> None:
        from loraforge.models.extras import require_models

        require_models("the retinaface face detector", "torch", "retinaface")
        self.device = device or default_device()
        self.confidence_threshold = confidence_threshold
        self.nms_threshold = nms_threshold
        path = resolve_retinaface_weights(weights)
        if path is not None:
            self._model = _retinaface_from_checkpoint(path, max_size=max_size, device=self.device)
        elif allow_download:
            self._model = _retinaface_download(max_size=max_size, device=self.device)
        else:
            raise ModelError(_missing_weights_message())

    def detect(self, images: list[Image.Image]) -> list[list[FaceBox]]:
        import numpy as np

        results = []
        for image in images:
            try:
                raw = self._model.predict_jsons(
                    np.asarray(image.convert("RGB")),
                    confidence_threshold=self.confidence_threshold,
                    nms_threshold=self.nms_threshold,
                )
            except Exception as exc:  # noqa: BLE001 - a model failure is reported as ours
                raise ModelError(
                    f"RetinaFace failed on a {image.width}x{image.height} picture: {exc}"
                ) from exc
            faces = [
                _face_from_json(e, image.width, image.height) for e in raw if len(e.get("bbox") or []) == 4
            ]
            results.append(sorted(faces, key=lambda f: (-f.score, -f.area, f.x0, f.y0)))
        return results


def resolve_retinaface_weights(weights: str | Path | None) -> Path | None:
    """An explicit checkpoint path, or the standard file name under settings.model_dir, or None."""
    if weights is not None:
        path = Path(weights)
        if not path.is_file():
            raise ModelError(f"RetinaFace weights not found at {path}")
        return path
    from loraforge.config import get_settings

    model_dir = get_settings().model_dir
    if model_dir is None:
        return None
    for candidate in (
        model_dir / RETINAFACE_WEIGHTS_NAME,
        model_dir / "retinaface" / RETINAFACE_WEIGHTS_NAME,
    ):
        if candidate.is_file():
            return candidate
    return None


def _retinaface_from_checkpoint(path: Path, *, max_size: int, device: str) -> Any:
    import torch
    from retinaface.predict_single import Model

    try:
        with warnings.catch_warnings():
            # retinaface-pytorch still passes torchvision's deprecated `pretrained=False`.
            warnings.simplefilter("ignore", UserWarning)
            model = Model(max_size=max_size, device=device)
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
        state = checkpoint.get("state_dict", checkpoint) if isinstance(checkpoint, dict) else checkpoint
        # Lightning-style checkpoints prefix every key with "model.".
        state = {key.removeprefix("model."): value for key, value in state.items()}
        model.load_state_dict(state)
        model.eval()
    except Exception as exc:  # noqa: BLE001 - torch raises many types on a bad file
        raise ModelError(f"could not load RetinaFace weights from {path}: {exc}") from exc
    logger.info("RetinaFace loaded from %s on %s", path, device)
    return model


def _retinaface_download(*, max_size: int, device: str) -> Any:
    from retinaface.pre_trained_models import get_model

    try:
        model = get_model(RETINAFACE_MODEL_NAME, max_size=max_size, device=device)
        model.eval()
    except Exception as exc:  # noqa: BLE001 - a network or hub failure
        raise ModelError(f"{_missing_weights_message()} (download failed: {exc})") from exc
    return model


def _missing_weights_message() -> str:
    return (
        "no RetinaFace weights: put "
        f"{RETINAFACE_WEIGHTS_NAME} in LORAFORGE_MODEL_DIR (or its retinaface/ folder), pass an explicit "
        "checkpoint path, or use the 'opencv' detector, which needs no weights"
    )


def _face_from_json(entry: dict[str, Any], width: int, height: int) -> FaceBox:
    # predict_jsons returns the unclipped box although it clips a copy; clamp it to the picture here.
    x0, y0, x1, y1 = (float(v) for v in entry["bbox"])
    x0, x1 = min(max(x0, 0.0), float(width)), min(max(x1, 0.0), float(width))
    y0, y1 = min(max(y0, 0.0), float(height)), min(max(y1, 0.0), float(height))
    landmarks = [(float(x), float(y)) for x, y in entry.get("landmarks") or []] or None
    return FaceBox(x0, y0, x1, y1, score=float(entry.get("score", 0.0)), landmarks=landmarks)
