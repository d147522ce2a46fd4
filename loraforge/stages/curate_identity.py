"""The identity filter in curation: reference faces saved on the dataset, face vectors cached per picture,
and the `other_person` outcome of every picture with a face.

References live in the dataset's settings JSON ("identity": model, max_distance, one vector per reference);
each picture's faces in image_metadata "face_embeddings" (by model), its match in "identity". Vectors are
computed once per picture: changing the references or the threshold only compares again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlalchemy.orm import Session

from loraforge.catalog.models import Dataset, Image
from loraforge.curation.identity import (
    DEFAULT_MAX_DISTANCE,
    IdentityMatch,
    check_max_distance,
    identity_outcome,
    match_identity,
)
from loraforge.curation.registry import CheckOutcome
from loraforge.errors import InvalidInput, ModelError, NotFound
from loraforge.imaging.decode import load_image
from loraforge.models.faces import FaceBox
from loraforge.models.identity import FaceEmbedder, FaceEmbedding
from loraforge.stages.curate_records import _metadata, _upsert_metadata
from loraforge.stages.face_embed import DETECT_DRAFT, FACE_EMBEDDINGS_KEY, embed_picture, faces_value
from loraforge.stages.face_embed import default_embedder as default_embedder  # where callers look for it
from loraforge.storage import ObjectStore

log = logging.getLogger(__name__)

IDENTITY_KEY = "identity"
MAX_REFERENCES = 20

EmbedderFactory = Callable[[], FaceEmbedder]


@dataclass(frozen=True)
class ReferenceFace:
    """One reference: where it came from, its face box there and its vector."""

    name: str
    vector: tuple[float, ...]
    box: tuple[float, float, float, float]
    image_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "image_id": self.image_id,
            "box": [round(v, 1) for v in self.box],
            "vector": [round(v, 6) for v in self.vector],
        }


@dataclass(frozen=True)
class IdentityConfig:
    """The references and threshold one curation pass compares with."""

    model: str
    references: tuple[ReferenceFace, ...]
    max_distance: float = DEFAULT_MAX_DISTANCE

    def matrix(self) -> np.ndarray:
        return np.asarray([r.vector for r in self.references], dtype=np.float32)


def reference_faces(
    pictures: Sequence[tuple[str, bytes]],
    embedder: FaceEmbedder,
    *,
    max_pixels: int,
    image_ids: Sequence[str | None] | None = None,
) -> list[ReferenceFace]:
    """One reference per (name, bytes) picture: its largest face. InvalidInput names a picture without one."""
    if not pictures:
        raise InvalidInput("give at least one reference picture")
    if len(pictures) > MAX_REFERENCES:
        raise InvalidInput(f"at most {MAX_REFERENCES} reference pictures, not {len(pictures)}")
    ids = list(image_ids) if image_ids is not None else [None] * len(pictures)
    references = []
    for (name, data), image_id in zip(pictures, ids, strict=True):
        try:
            image = load_image(data, max_pixels=max_pixels, draft_size=DETECT_DRAFT)
        except InvalidInput as exc:
            raise InvalidInput(f"reference {name}: {exc}") from exc
        faces = embedder.embed_faces([image])[0]
        if not faces:
            raise InvalidInput(f"reference {name}: no face found; give a picture where the face is clear")
        face = faces[0]  # the largest: a reference shows the person, maybe with others smaller behind
        box = (face.box.x0, face.box.y0, face.box.x1, face.box.y1)
        vector = tuple(float(v) for v in face.vector)
        references.append(ReferenceFace(name, vector, box, image_id))
    return references


def save_references(
    dataset: Dataset, references: Sequence[ReferenceFace], *, model: str, max_distance: float | None = None
) -> IdentityConfig:
    """Replace the dataset's references (and threshold, when given); the next curation compares with them."""
    if max_distance is None:
        max_distance = float(_saved(dataset).get("max_distance", DEFAULT_MAX_DISTANCE))
    try:
        threshold = check_max_distance(max_distance)
    except ValueError as exc:
        raise InvalidInput(str(exc)) from None
    saved = {"model": model, "max_distance": threshold, "references": [r.to_dict() for r in references]}
    # A new dict, so SQLAlchemy sees the change to the JSON column.
    dataset.settings = {**(dataset.settings or {}), IDENTITY_KEY: saved}
    return IdentityConfig(model, tuple(references), threshold)


def clear_references(dataset: Dataset) -> None:
    """Turn the identity filter off for this dataset."""
    settings = dict(dataset.settings or {})
    settings.pop(IDENTITY_KEY, None)
    dataset.settings = settings


def identity_config(dataset: Dataset) -> IdentityConfig | None:
    """The saved references, or None when the dataset has none."""
    saved = _saved(dataset)
    if not saved.get("references"):
        return None
    references = tuple(
        ReferenceFace(
            name=str(r["name"]),
            vector=tuple(float(v) for v in r["vector"]),
            box=tuple(float(v) for v in r["box"]),  # type: ignore[arg-type]
            image_id=r.get("image_id"),
        )
        for r in saved["references"]
    )
    return IdentityConfig(str(saved["model"]), references, float(saved["max_distance"]))


def set_reference_pictures(
    dataset: Dataset,
    pictures: Sequence[tuple[str, bytes]],
    embedder: FaceEmbedder,
    *,
    max_pixels: int,
    max_distance: float | None = None,
) -> IdentityConfig:
    """Set the references to pictures the client read itself (the CLI's --reference): bytes, not paths."""
    references = reference_faces(pictures, embedder, max_pixels=max_pixels)
    return save_references(dataset, references, model=embedder.model, max_distance=max_distance)


def set_max_distance(dataset: Dataset, max_distance: float) -> IdentityConfig:
    """Change the threshold of the saved references; InvalidInput when the dataset has none."""
    config = identity_config(dataset)
    if config is None:
        raise InvalidInput(f"dataset {dataset.name} has no reference faces: give them first (--reference)")
    return save_references(dataset, config.references, model=config.model, max_distance=max_distance)


def references_from_images(
    session: Session,
    store: ObjectStore,
    dataset: Dataset,
    image_ids: Sequence[str],
    embedder: FaceEmbedder,
    *,
    max_pixels: int,
    max_distance: float | None = None,
) -> IdentityConfig:
    """Set the references to pictures already in the dataset (the dashboard's pick)."""
    ids = list(dict.fromkeys(image_ids))
    images = {image.id: image for image in session.query(Image).filter(Image.id.in_(ids))}
    missing = [i for i in ids if i not in images or images[i].dataset_id != dataset.id]
    if missing:
        raise NotFound(f"no image {', '.join(missing)} in dataset {dataset.name}")
    pictures = [(images[i].original_filename, store.get(images[i].object_key)) for i in ids]
    references = reference_faces(pictures, embedder, max_pixels=max_pixels, image_ids=ids)
    return save_references(dataset, references, model=embedder.model, max_distance=max_distance)


def face_embeddings(
    session: Session,
    store: ObjectStore,
    images: Sequence[Image],
    *,
    model: str,
    embedder: EmbedderFactory,
    max_pixels: int,
) -> dict[str, list[FaceEmbedding]]:
    """Image id -> its faces (largest first), computed for pictures without vectors of this model and stored.

    Boxes are in the picture's full-size pixels (after EXIF orientation), as the bucket stage's are.
    The model loads only when a picture needs it. Pictures that cannot be read are left out.
    """
    cached = _metadata(session, [image.id for image in images], FACE_EMBEDDINGS_KEY)
    out: dict[str, list[FaceEmbedding]] = {}
    for image_id, value in cached.items():
        if isinstance(value, dict) and value.get("model") == model:
            out[image_id] = [
                FaceEmbedding(_box(face["bbox"]), np.asarray(face["vector"], dtype=np.float32))
                for face in value.get("faces", [])
            ]
    todo = [image for image in images if image.id not in out]
    if not todo:
        return out
    model_instance = embedder()
    if model_instance.model != model:
        raise ModelError(f"the references were made with {model}, the embedder is {model_instance.model}")
    fresh: dict[str, Any] = {}
    for image in todo:
        try:
            data = store.get(image.object_key)
            faces = embed_picture(model_instance, data, (image.width, image.height), max_pixels=max_pixels)
        except (InvalidInput, NotFound) as exc:
            log.warning("no face vectors for %s: %s", image.original_filename, exc)
            continue
        out[image.id] = faces
        fresh[image.id] = faces_value(model, faces)
    _upsert_metadata(session, FACE_EMBEDDINGS_KEY, fresh)
    return out


def identity_outcomes(
    faces: Mapping[str, Sequence[FaceEmbedding]], config: IdentityConfig
) -> dict[str, tuple[CheckOutcome, IdentityMatch]]:
    """Image id -> its `other_person` outcome and match, for every picture with at least one face."""
    references = config.matrix()
    out = {}
    for image_id, image_faces in faces.items():
        if not image_faces:
            continue
        match = match_identity(
            [f.box for f in image_faces],
            np.stack([f.vector for f in image_faces]),
            references,
            max_distance=config.max_distance,
        )
        assert match is not None
        out[image_id] = (identity_outcome(match, max_distance=config.max_distance), match)
    return out


def record_identity(
    session: Session, images: Sequence[Image], matches: Mapping[str, IdentityMatch], config: IdentityConfig
) -> None:
    """Each picture's match (score and face box) in image_metadata "identity"; None for a face-less one."""
    values = {
        image.id: (
            {**matches[image.id].to_dict(), "model": config.model, "max_distance": config.max_distance}
            if image.id in matches
            else {"model": config.model, "faces": 0}
        )
        for image in images
    }
    _upsert_metadata(session, IDENTITY_KEY, values)


def matched_face_boxes(session: Session, dataset: Dataset, ids: Sequence[str]) -> dict[str, list[float]]:
    """Image id -> the box of its face closest to the references, while the dataset has references:
    the face a crop keeps in a picture of several people."""
    config = identity_config(dataset)
    if config is None:
        return {}
    stored = _metadata(session, list(ids), IDENTITY_KEY)
    return {
        image_id: [float(v) for v in value["box"]]
        for image_id, value in stored.items()
        if isinstance(value, dict) and value.get("model") == config.model and value.get("box")
    }


def _saved(dataset: Dataset) -> dict[str, Any]:
    value = (dataset.settings or {}).get(IDENTITY_KEY)
    return value if isinstance(value, dict) else {}


def _box(bbox: Sequence[float]) -> FaceBox:
    x0, y0, x1, y1 = (float(v) for v in bbox)
    return FaceBox(x0, y0, x1, y1, score=1.0)
