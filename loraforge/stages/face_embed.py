"""Face vectors for the identity filter, computed on the workers: one pass of the curate flow, before the
driver decides.

Worker side (`FaceEmbedStage`): fetch the original, find its faces and their identity vectors with the
embedder loaded once per worker (stateful: an actor pool on Ray). Driver side: `select_face_work` (measured
pictures without vectors of the references' model) and `record_face_embeddings` (image_metadata
"face_embeddings", by model). The decide step then reads every vector from the catalog; it computes only
what a worker could not (curate_identity.face_embeddings).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.orm import Session

from loraforge.catalog.queries import dataset_images
from loraforge.curation.features import FEATURES_VERSION
from loraforge.errors import InvalidInput, ModelError, NotFound
from loraforge.imaging.decode import load_image
from loraforge.models.faces import FaceBox
from loraforge.models.identity import FaceEmbedder, FaceEmbedding
from loraforge.stages.base import Item, Resources, Result
from loraforge.stages.curate_records import FEATURES_KEY, _metadata, _upsert_metadata
from loraforge.stages.faults import failed
from loraforge.storage import ObjectStore, StoreConfig, open_store

log = logging.getLogger(__name__)

FACE_EMBEDDINGS_KEY = "face_embeddings"
DETECT_DRAFT = (1024, 1024)
"""Decode size for face detection: JPEG draft() skips most of a 12 MP picture's pixels."""

_EMBEDDERS: dict[str, FaceEmbedder] = {}
"""One embedder per worker process and model: dlib's models load in about a second."""


def default_embedder() -> FaceEmbedder:
    from loraforge.models.identity import build_face_embedder

    return build_face_embedder()


def embed_picture(
    embedder: FaceEmbedder, data: bytes, size: tuple[int, int], *, max_pixels: int
) -> list[FaceEmbedding]:
    """The faces of a stored picture of this full size, largest first, with boxes in its full-size pixels
    (after EXIF orientation, as the bucket stage's are). InvalidInput for bytes that are not a picture."""
    picture = load_image(data, max_pixels=max_pixels, draft_size=DETECT_DRAFT)
    fx, fy = size[0] / picture.width, size[1] / picture.height
    faces = embedder.embed_faces([picture])[0]
    return [FaceEmbedding(_scaled(face.box, fx, fy), face.vector) for face in faces]


def faces_value(model: str, faces: Sequence[FaceEmbedding]) -> dict[str, Any]:
    """What image_metadata "face_embeddings" holds for one picture."""
    return {
        "model": model,
        "faces": [
            {
                "bbox": [round(v, 1) for v in (f.box.x0, f.box.y0, f.box.x1, f.box.y1)],
                "vector": [round(float(x), 6) for x in f.vector],
            }
            for f in faces
        ],
    }


@dataclass
class FaceEmbedStage:
    """Worker side. Items: image_id, object_key, width, height, filename. Results add "faces" (the
    metadata value) or an error; a picture that cannot be read records no faces, the store down is retried."""

    store_config: StoreConfig
    max_pixels: int
    model: str
    embedder: Callable[[], FaceEmbedder] = default_embedder

    name: str = "face-embed"
    version: int = 1
    resources: Resources = field(default_factory=lambda: Resources(num_cpus=1))
    batch_size: int = 4
    stateful: bool = True

    def __post_init__(self) -> None:
        self._store: ObjectStore | None = None

    def setup(self) -> None:
        if self._store is None:
            self._store = open_store(self.store_config)
        if self.model not in _EMBEDDERS:
            embedder = self.embedder()
            if embedder.model != self.model:
                raise ModelError(
                    f"the references were made with {self.model}, the embedder is {embedder.model}"
                )
            _EMBEDDERS[self.model] = embedder

    def process_batch(self, items: list[Item]) -> list[Result]:
        self.setup()
        return [self._process(item) for item in items]

    def _process(self, item: Item) -> Result:
        assert self._store is not None
        try:
            data = self._store.get(item["object_key"])
            size = (item["width"], item["height"])
            faces = embed_picture(_EMBEDDERS[self.model], data, size, max_pixels=self.max_pixels)
        except (InvalidInput, NotFound) as exc:
            # Bytes that are not a picture stay so: no faces, recorded, never tried again.
            log.warning("no face vectors for %s: %s", item.get("filename"), exc)
            return {**item, "faces": faces_value(self.model, []), "error": None}
        except Exception as exc:  # noqa: BLE001 - one picture (or a store hiccup) must not fail the batch
            return failed(item, exc)
        return {**item, "faces": faces_value(self.model, faces), "error": None}


def select_face_work(session: Session, dataset_id: str, model: str) -> list[Item]:
    """Measured, readable pictures of the dataset without vectors of this model (what decide scores)."""
    images = dataset_images(session, dataset_id)
    ids = [image.id for image in images]
    features = _metadata(session, ids, FEATURES_KEY)
    vectors = _metadata(session, ids, FACE_EMBEDDINGS_KEY)
    return [
        {
            "image_id": image.id,
            "object_key": image.object_key,
            "width": image.width,
            "height": image.height,
            "filename": image.original_filename,
        }
        for image in images
        if _readable(features.get(image.id)) and not _has_model(vectors.get(image.id), model)
    ]


def record_face_embeddings(session: Session, results: Sequence[Result]) -> int:
    """Store the vectors of the pictures that have them; how many were stored."""
    values = {result["image_id"]: result["faces"] for result in results if not result.get("error")}
    _upsert_metadata(session, FACE_EMBEDDINGS_KEY, values)
    return len(values)


def _readable(value: Any) -> bool:
    return isinstance(value, dict) and value.get("version") == FEATURES_VERSION and not value.get("error")


def _has_model(value: Any, model: str) -> bool:
    return isinstance(value, dict) and value.get("model") == model


def _scaled(box: FaceBox, fx: float, fy: float) -> FaceBox:
    return FaceBox(box.x0 * fx, box.y0 * fy, box.x1 * fx, box.y1 * fy, box.score)
