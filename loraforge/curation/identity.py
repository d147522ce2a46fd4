"""The identity filter's maths: how far a picture's faces are from the reference faces, and its issue.

Pure functions on vectors (no model here). A picture's distance is that of its face closest to any
reference; the face it belongs to is the one the crop keeps. The `other_person` score is that distance
clamped to 0..1 (higher: less like the person), flagged above `max_distance` (dlib's 0.6 by default).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from loraforge.curation.registry import CheckOutcome
from loraforge.models.faces import FaceBox

OTHER_PERSON = "other_person"
DEFAULT_MAX_DISTANCE = 0.6
"""dlib's same-person threshold (euclidean distance between 128-number face vectors)."""
MIN_MAX_DISTANCE, MAX_MAX_DISTANCE = 0.2, 1.0
"""Bounds of a user's threshold: under 0.2 even the same photo resized fails; from 1.0 anyone passes."""


@dataclass(frozen=True)
class IdentityMatch:
    """A picture's faces compared with the references."""

    distance: float
    """Euclidean distance of the closest face to its closest reference."""
    box: FaceBox
    """That face: the one the crop keeps."""
    faces: int
    matched: bool

    @property
    def similarity(self) -> float:
        """1 - distance, in 0..1: 1 for the same vector, 0.4 at dlib's threshold."""
        return round(min(1.0, max(0.0, 1.0 - self.distance)), 4)

    def to_dict(self) -> dict[str, Any]:
        return {
            "distance": round(self.distance, 4),
            "similarity": self.similarity,
            "matched": self.matched,
            "box": [round(v, 1) for v in (self.box.x0, self.box.y0, self.box.x1, self.box.y1)],
            "faces": self.faces,
        }


def closest_distances(vectors: np.ndarray, references: np.ndarray) -> np.ndarray:
    """For each row of `vectors` (faces x 128), its distance to the nearest row of `references`."""
    faces = np.asarray(vectors, dtype=np.float32).reshape(-1, references.shape[-1])
    refs = np.asarray(references, dtype=np.float32).reshape(-1, faces.shape[-1])
    if not len(faces) or not len(refs):
        raise ValueError("closest_distances needs at least one face and one reference")
    return np.linalg.norm(faces[:, None, :] - refs[None, :, :], axis=-1).min(axis=1)


def match_identity(
    boxes: Sequence[FaceBox], vectors: np.ndarray, references: np.ndarray, *, max_distance: float
) -> IdentityMatch | None:
    """The face closest to the references and whether it is close enough; None for a picture without faces."""
    if not boxes:
        return None
    distances = closest_distances(vectors, references)
    best = int(np.argmin(distances))
    distance = float(distances[best])
    return IdentityMatch(distance, boxes[best], faces=len(boxes), matched=distance <= max_distance)


def identity_outcome(match: IdentityMatch, *, max_distance: float) -> CheckOutcome:
    """The `other_person` issue of one picture, shaped like every check's outcome."""
    score = round(min(1.0, max(0.0, match.distance)), 4)
    return CheckOutcome(OTHER_PERSON, score, not match.matched, max_distance)


def keep_matching_face(
    faces: Sequence[FaceBox], matched: Sequence[float] | None, *, min_overlap: float = 0.3
) -> list[FaceBox]:
    """The faces a crop should keep: with a matched box from the identity filter, only the detected face
    that overlaps it most (or the matched box itself when no detected face overlaps it enough)."""
    if matched is None:
        return list(faces)
    x0, y0, x1, y1 = (float(v) for v in matched)
    target = FaceBox(x0, y0, x1, y1, score=1.0)
    best = max(faces, key=lambda face: _overlap(face, target), default=None)
    if best is not None and _overlap(best, target) >= min_overlap:
        return [best]
    return [target]


def _overlap(a: FaceBox, b: FaceBox) -> float:
    """Intersection over union of two boxes."""
    w = min(a.x1, b.x1) - max(a.x0, b.x0)
    h = min(a.y1, b.y1) - max(a.y0, b.y0)
    inter = max(0.0, w) * max(0.0, h)
    union = a.area + b.area - inter
    return inter / union if union > 0 else 0.0


def check_max_distance(value: float) -> float:
    """A user's threshold, refused outside the bounds with a reason."""
    number = float(value)
    if not MIN_MAX_DISTANCE <= number <= MAX_MAX_DISTANCE:
        raise ValueError(
            f"the face distance threshold must be between {MIN_MAX_DISTANCE} and {MAX_MAX_DISTANCE} "
            f"(dlib's standard is {DEFAULT_MAX_DISTANCE}), not {value}"
        )
    return number
