"""Face embeddings for the identity filter: dlib's ResNet face recogniser behind a small protocol.

dlib maps an aligned face to a 128-number vector; two faces of one person lie within 0.6 euclidean
distance of each other (dlib's own threshold, 99.38% on LFW). The weights ship in the PyPI package
`face-recognition-models`; dlib itself comes from `dlib-bin`. Both are optional (the `models` extra) and
are imported only when an embedder is built.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

from loraforge.errors import ModelError
from loraforge.models.faces import FaceBox

if TYPE_CHECKING:
    import numpy as np
    from PIL import Image

DLIB_MODEL = "dlib_face_recognition_resnet_model_v1"
"""The name stored beside every vector: vectors of different models are never compared."""
SAME_PERSON_DISTANCE = 0.6
"""dlib's threshold: faces closer than this are the same person."""
_WEIGHTS = {
    "recognition": "dlib_face_recognition_resnet_model_v1.dat",
    "landmarks": "shape_predictor_5_face_landmarks.dat",
    "cnn": "mmod_human_face_detector.dat",
}
MISSING_DLIB = (
    "the identity filter needs dlib and its face models: pip install 'loraforge[models]' "
    "(dlib-bin and face-recognition-models)"
)

Detector = Literal["hog", "cnn"]


@dataclass(frozen=True)
class FaceEmbedding:
    """One face: its box in the picture's pixel coordinates and its identity vector (128 floats)."""

    box: FaceBox
    vector: np.ndarray


@runtime_checkable
class FaceEmbedder(Protocol):
    model: str

    def embed_faces(self, images: list[Image.Image]) -> list[list[FaceEmbedding]]:
        """Every face of every picture, largest first, in that picture's pixel coordinates."""


def dlib_weights_dir() -> Path:
    """The folder of dlib's weights: LORAFORGE_MODEL_DIR/dlib when it has them, else the installed
    `face_recognition_models` package (found without importing it: its __init__ needs pkg_resources)."""
    from loraforge.config import get_settings

    model_dir = get_settings().model_dir
    if model_dir is not None and (model_dir / "dlib" / _WEIGHTS["recognition"]).is_file():
        return model_dir / "dlib"
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(MISSING_DLIB)
    return Path(next(iter(spec.submodule_search_locations))) / "models"


class DlibFaceEmbedder:
    """dlib's HOG (or CNN) face detector, 5-point alignment and ResNet recogniser, on CPU.

    Pictures are shrunk to `max_side` before detection: with one upsampling pass, HOG finds faces down to
    about 40 px, 5% of an 800 px side, and the cost grows with the pixels.
    """

    model = DLIB_MODEL

    def __init__(
        self,
        *,
        detector: Detector = "hog",
        max_side: int = 800,
        upsample: int = 1,
        weights_dir: Path | None = None,
    ) -> None:
        try:
            import dlib
        except ImportError as exc:
            raise ModelError(MISSING_DLIB) from exc
        folder = weights_dir or dlib_weights_dir()
        needed = ["recognition", "landmarks"] + (["cnn"] if detector == "cnn" else [])
        missing = [_WEIGHTS[name] for name in needed if not (folder / _WEIGHTS[name]).is_file()]
        if missing:
            raise ModelError(f"dlib weights {', '.join(missing)} not found in {folder}; {MISSING_DLIB}")
        try:
            if detector == "cnn":
                cnn = dlib.cnn_face_detection_model_v1(str(folder / _WEIGHTS["cnn"]))
                self._detect: Any = lambda pixels: [d.rect for d in cnn(pixels, upsample)]
            else:
                hog = dlib.get_frontal_face_detector()
                self._detect = lambda pixels: list(hog(pixels, upsample))
            self._landmarks = dlib.shape_predictor(str(folder / _WEIGHTS["landmarks"]))
            self._recogniser = dlib.face_recognition_model_v1(str(folder / _WEIGHTS["recognition"]))
        except RuntimeError as exc:  # dlib's only error type, e.g. a truncated .dat file
            raise ModelError(f"could not load dlib's face models from {folder}: {exc}") from exc
        self._full_object_detections = dlib.full_object_detections
        self.max_side = max_side

    def embed_faces(self, images: list[Image.Image]) -> list[list[FaceEmbedding]]:
        return [self._embed_one(image) for image in images]

    def _embed_one(self, image: Image.Image) -> list[FaceEmbedding]:
        import numpy as np

        scale = min(1.0, self.max_side / max(image.size))
        small = image.convert("RGB")
        if scale < 1.0:
            small = small.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))))
        pixels = np.asarray(small, dtype=np.uint8)
        rects = self._detect(pixels)
        if not rects:
            return []
        shapes = self._full_object_detections()
        for rect in rects:
            shapes.append(self._landmarks(pixels, rect))
        vectors = self._recogniser.compute_face_descriptor(pixels, shapes)
        faces = []
        for rect, vector in zip(rects, vectors, strict=True):
            x0, y0 = max(0, rect.left()) / scale, max(0, rect.top()) / scale
            x1 = min(small.width, rect.right() + 1) / scale
            y1 = min(small.height, rect.bottom() + 1) / scale
            box = FaceBox(x0, y0, x1, y1, score=1.0)
            faces.append(FaceEmbedding(box, np.asarray(vector, dtype=np.float32)))
        return sorted(faces, key=lambda f: (-f.box.area, f.box.x0, f.box.y0))


def build_face_embedder(detector: Detector = "hog", *, max_side: int = 800) -> FaceEmbedder:
    """The face embedder the identity filter uses; ModelError in one line when dlib is not installed."""
    return DlibFaceEmbedder(detector=detector, max_side=max_side)
