"""dlib's face vectors on real photos: the same person through augmentations passes, another is flagged."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from loraforge.curation.identity import (
    DEFAULT_MAX_DISTANCE,
    OTHER_PERSON,
    check_max_distance,
    closest_distances,
    identity_outcome,
    match_identity,
)
from loraforge.errors import ModelError
from loraforge.models.identity import MISSING_DLIB, DlibFaceEmbedder, FaceEmbedder, build_face_embedder
from tests.identity.photos import AUGMENTATIONS, portrait, two_people


@pytest.fixture(scope="module")
def embedder() -> FaceEmbedder:
    return build_face_embedder()


@pytest.fixture(scope="module")
def references(embedder: FaceEmbedder) -> dict[str, np.ndarray]:
    out = {}
    for name in ("grace_hopper", "astronaut"):
        faces = embedder.embed_faces([portrait(name)])[0]
        assert len(faces) == 1, name
        out[name] = faces[0].vector[None, :]
    return out


def test_the_embedder_follows_the_protocol(embedder: FaceEmbedder) -> None:
    assert isinstance(embedder, FaceEmbedder)
    faces = embedder.embed_faces([portrait("grace_hopper")])[0]
    assert faces[0].vector.shape == (128,)
    # Grace Hopper's face sits in the upper middle of matplotlib's 512x600 sample.
    box = faces[0].box
    assert 120 < box.x0 < box.x1 < 400 and 100 < box.y0 < box.y1 < 360


@pytest.mark.parametrize("person", ["grace_hopper", "astronaut"])
@pytest.mark.parametrize("augmentation", sorted(AUGMENTATIONS))
def test_the_same_person_passes_through_augmentations(
    embedder: FaceEmbedder, references: dict[str, np.ndarray], person: str, augmentation: str
) -> None:
    picture = AUGMENTATIONS[augmentation](portrait(person))
    faces = embedder.embed_faces([picture])[0]
    match = match_identity(
        [f.box for f in faces],
        np.stack([f.vector for f in faces]),
        references[person],
        max_distance=DEFAULT_MAX_DISTANCE,
    )
    assert match is not None and match.matched, (person, augmentation, match)
    assert match.distance < 0.4
    outcome = identity_outcome(match, max_distance=DEFAULT_MAX_DISTANCE)
    assert outcome.name == OTHER_PERSON and not outcome.flagged


@pytest.mark.parametrize("augmentation", sorted(AUGMENTATIONS))
def test_a_different_person_is_flagged(
    embedder: FaceEmbedder, references: dict[str, np.ndarray], augmentation: str
) -> None:
    picture = AUGMENTATIONS[augmentation](portrait("astronaut"))
    faces = embedder.embed_faces([picture])[0]
    match = match_identity(
        [f.box for f in faces],
        np.stack([f.vector for f in faces]),
        references["grace_hopper"],
        max_distance=DEFAULT_MAX_DISTANCE,
    )
    assert match is not None and not match.matched
    outcome = identity_outcome(match, max_distance=DEFAULT_MAX_DISTANCE)
    assert outcome.flagged and outcome.score > DEFAULT_MAX_DISTANCE
    assert outcome.score == pytest.approx(match.distance, abs=1e-4)
    assert match.similarity == pytest.approx(1 - match.distance, abs=1e-4)


def test_two_faces_keep_the_matching_ones_box(
    embedder: FaceEmbedder, references: dict[str, np.ndarray]
) -> None:
    picture, right_starts = two_people("astronaut", "grace_hopper")
    faces = embedder.embed_faces([picture])[0]
    assert len(faces) == 2
    for person, on_the_right in (("grace_hopper", True), ("astronaut", False)):
        match = match_identity(
            [f.box for f in faces],
            np.stack([f.vector for f in faces]),
            references[person],
            max_distance=DEFAULT_MAX_DISTANCE,
        )
        assert match is not None and match.matched and match.faces == 2
        assert (match.box.x0 >= right_starts) is on_the_right, (person, match.box)
        assert (match.box.x1 <= right_starts) is not on_the_right


def test_either_of_several_references_is_enough(
    embedder: FaceEmbedder, references: dict[str, np.ndarray]
) -> None:
    both = np.concatenate([references["grace_hopper"], references["astronaut"]])
    for person in ("grace_hopper", "astronaut"):
        faces = embedder.embed_faces([AUGMENTATIONS["flip"](portrait(person))])[0]
        distances = closest_distances(np.stack([f.vector for f in faces]), both)
        assert distances.min() < DEFAULT_MAX_DISTANCE


def test_a_picture_without_a_face_has_no_match(
    embedder: FaceEmbedder, references: dict[str, np.ndarray]
) -> None:
    from tests.support.images import real_photo

    assert embedder.embed_faces([real_photo("chelsea"), real_photo("coffee")]) == [[], []]
    assert match_identity([], np.zeros((0, 128)), references["astronaut"], max_distance=0.6) is None


def test_closest_distances_is_the_minimum_over_references() -> None:
    faces = np.array([[0.0, 0.0], [3.0, 4.0]])
    refs = np.array([[0.0, 1.0], [3.0, 0.0]])
    assert closest_distances(faces, refs).tolist() == pytest.approx(
        [1.0, 4.0]
    )  # (3,4) is 4 from (3,0), 4.24 from (0,1)
    with pytest.raises(ValueError, match="at least one"):
        closest_distances(np.zeros((0, 2)), refs)


def test_the_threshold_has_bounds() -> None:
    assert check_max_distance(0.55) == 0.55
    for bad in (0.1, 1.5):
        with pytest.raises(ValueError, match="between 0.2 and 1.0"):
            check_max_distance(bad)


def test_missing_weights_are_named(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="dlib_face_recognition_resnet_model_v1.dat") as caught:
        DlibFaceEmbedder(weights_dir=tmp_path)
    assert "\n" not in str(caught.value)


def test_without_dlib_the_error_is_one_line_naming_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "dlib", None)  # what `import dlib` meets in a light install
    with pytest.raises(ModelError) as caught:
        build_face_embedder()
    assert str(caught.value) == MISSING_DLIB and "loraforge[models]" in MISSING_DLIB


def test_importing_loraforge_does_not_import_dlib() -> None:
    code = (
        "import sys, loraforge, loraforge.stages.curate, loraforge.models.identity;"
        "print(sorted(m for m in ('dlib', 'face_recognition_models') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
