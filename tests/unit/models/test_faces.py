"""Face detectors: OpenCV's Haar cascade on real photos, RetinaFace through a locally saved checkpoint."""

from __future__ import annotations

import os
import shutil
import warnings
from pathlib import Path

import matplotlib
import pytest
import skimage
from PIL import Image

from loraforge.errors import InvalidInput, ModelError
from loraforge.models.faces import FaceBox, FaceDetector, build_face_detector, detector_names


def astronaut() -> Image.Image:
    return Image.open(os.path.join(os.path.dirname(skimage.__file__), "data", "astronaut.png")).convert("RGB")


def grace_hopper() -> Image.Image:
    path = os.path.join(matplotlib.get_data_path(), "sample_data", "grace_hopper.jpg")
    return Image.open(path).convert("RGB")


def save_random_retinaface(path: Path) -> Path:
    import torch
    from retinaface.predict_single import Model

    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # torchvision's `pretrained` deprecation
        model = Model(max_size=128, device="cpu")
    torch.save(model.model.state_dict(), path)
    return path


@pytest.fixture(scope="module")
def random_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A RetinaFace checkpoint with random weights, saved the way a downloaded one sits on disk."""
    return save_random_retinaface(tmp_path_factory.mktemp("retinaface") / "retinaface.pth")


def test_registry_lists_both_detectors_and_refuses_unknown_ones() -> None:
    assert {"opencv", "retinaface"} <= set(detector_names())
    with pytest.raises(InvalidInput, match="opencv"):
        build_face_detector("dlib")


def test_opencv_finds_the_astronauts_face() -> None:
    detector = build_face_detector("opencv")
    assert isinstance(detector, FaceDetector)
    faces = detector.detect([astronaut()])[0]
    assert len(faces) == 1
    face = faces[0]
    # Eileen Collins' face sits around x 180-270, y 60-160 in the 512x512 picture.
    assert 150 < face.x0 < 200 and 250 < face.x1 < 300 and 40 < face.y0 < 90 and 140 < face.y1 < 190
    assert 0.0 < face.score <= 1.0 and face.landmarks is None
    assert all(isinstance(v, float) for v in (face.x0, face.y0, face.x1, face.y1))


def test_opencv_finds_grace_hopper_in_original_coordinates_after_downscaling() -> None:
    photo = grace_hopper()
    big = photo.resize((photo.width * 3, photo.height * 3))
    small_faces, big_faces = build_face_detector("opencv", max_size=640).detect([photo, big])
    assert len(small_faces) == 1 and len(big_faces) == 1
    centre_small = ((small_faces[0].x0 + small_faces[0].x1) / 2, (small_faces[0].y0 + small_faces[0].y1) / 2)
    centre_big = ((big_faces[0].x0 + big_faces[0].x1) / 2, (big_faces[0].y0 + big_faces[0].y1) / 2)
    assert abs(centre_big[0] / 3 - centre_small[0]) < 15 and abs(centre_big[1] / 3 - centre_small[1]) < 15
    assert 200 < centre_small[0] < 330 and 150 < centre_small[1] < 280


def test_opencv_finds_no_face_in_a_flat_picture() -> None:
    assert build_face_detector("opencv").detect([Image.new("RGB", (400, 300), (90, 90, 90))]) == [[]]


def test_retinaface_loads_a_local_checkpoint_and_returns_face_boxes(random_weights: Path) -> None:
    detector = build_face_detector("retinaface", weights=random_weights, device="cpu", max_size=128)
    detector.confidence_threshold = 0.0  # random weights: let every box through so there are boxes to check
    pictures = [astronaut().resize((128, 128)), Image.new("RGB", (96, 72), (30, 60, 90))]
    results = detector.detect(pictures)
    assert len(results) == 2 and all(results)
    for picture, faces in zip(pictures, results, strict=True):
        assert isinstance(faces, list)
        for face in faces:  # random weights: boxes are junk, their shape is what is checked
            assert isinstance(face, FaceBox)
            assert 0 <= face.x0 <= face.x1 <= picture.width and 0 <= face.y0 <= face.y1 <= picture.height
            assert face.landmarks is not None and len(face.landmarks) == 5
            assert 0.0 <= face.score <= 1.0


def test_retinaface_finds_weights_in_the_model_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, random_weights: Path
) -> None:
    from loraforge.config import get_settings

    (tmp_path / "retinaface").mkdir()
    shutil.copy(random_weights, tmp_path / "retinaface" / "retinaface_resnet50_2020-07-20.pth")
    monkeypatch.setenv("LORAFORGE_MODEL_DIR", str(tmp_path))
    get_settings.cache_clear()
    try:
        detector = build_face_detector("retinaface", device="cpu", max_size=128, allow_download=False)
        assert len(detector.detect([Image.new("RGB", (64, 64))])) == 1
    finally:
        get_settings.cache_clear()


def test_retinaface_without_weights_explains_how_to_provide_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from loraforge.config import get_settings

    monkeypatch.setenv("LORAFORGE_MODEL_DIR", str(tmp_path))
    get_settings.cache_clear()
    try:
        with pytest.raises(ModelError, match="LORAFORGE_MODEL_DIR"):
            build_face_detector("retinaface", device="cpu", allow_download=False)
    finally:
        get_settings.cache_clear()
    with pytest.raises(ModelError, match="not found"):
        build_face_detector("retinaface", weights=tmp_path / "missing.pth", device="cpu")
    (tmp_path / "broken.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(ModelError, match="could not load"):
        build_face_detector("retinaface", weights=tmp_path / "broken.pth", device="cpu")
