"""Crop boxes: bucket aspect, face preservation on real photos, fallbacks, saliency."""

from __future__ import annotations

import random

import pytest
from imaging_photos import face_photos, opencv_detector
from PIL import Image, ImageDraw

from loraforge.imaging.buckets import Bucket, bucket_set, choose_bucket
from loraforge.imaging.crop import crop_box, largest_box_size, saliency_center
from loraforge.models.faces import FaceBox


def face(x0: float, y0: float, x1: float, y1: float, score: float = 0.9) -> FaceBox:
    return FaceBox(x0, y0, x1, y1, score=score, landmarks=None)


def inside(box: tuple[int, int, int, int], region: tuple[float, float, float, float]) -> bool:
    return box[0] <= region[0] and box[1] <= region[1] and box[2] >= region[2] and box[3] >= region[3]


def test_box_has_the_bucket_aspect_and_is_the_largest_that_fits() -> None:
    rng = random.Random(3)
    for _ in range(300):
        width, height = rng.randint(40, 4000), rng.randint(40, 4000)
        bucket = rng.choice(bucket_set(rng.choice(["sd15", "sdxl", "flux"])).buckets)
        decision = crop_box(width, height, bucket, [])
        x0, y0, x1, y1 = decision.box
        assert 0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height
        box_w, box_h = x1 - x0, y1 - y0
        assert box_w == width or box_h == height  # the largest box touches two opposite edges
        assert abs(box_w * bucket.height / bucket.width - box_h) <= 1.0 + bucket.height / bucket.width
        assert decision.reason == "centred"


def test_all_faces_kept_when_they_fit() -> None:
    faces = [face(100, 300, 200, 400), face(700, 350, 800, 450)]
    decision = crop_box(1600, 900, Bucket(1024, 1024), faces)
    assert decision.reason == "keeps all 2 faces"
    assert decision.faces_kept == 2
    assert all(inside(decision.box, (f.x0, f.y0, f.x1, f.y1)) for f in faces)
    assert inside(decision.box, (75, 275, 825, 475))  # with the 25% margin too


def test_main_face_kept_when_all_cannot_fit() -> None:
    faces = [face(50, 300, 150, 400), face(1300, 300, 1500, 500, score=0.99), face(800, 200, 880, 280)]
    decision = crop_box(1600, 900, Bucket(1024, 1024), faces)
    assert decision.reason == "keeps main face (3 faces don't fit)"
    assert inside(decision.box, (1250, 250, 1550, 550))
    assert decision.box[2] - decision.box[0] == 900


def test_face_larger_than_any_box_centres_on_it() -> None:
    decision = crop_box(1000, 1000, Bucket(2048, 512), [face(300, 200, 700, 800)])
    assert decision.reason.startswith("centred on main face")
    x0, y0, x1, y1 = decision.box
    assert (x1 - x0, y1 - y0) == (1000, 250)
    assert abs((y0 + y1) / 2 - 500) <= 1


def test_faces_outside_the_picture_are_ignored_and_subject_centre_used() -> None:
    decision = crop_box(1200, 800, Bucket(512, 512), [face(1300, 10, 1400, 90)], subject_center=(1100, 400))
    assert decision.reason == "centred on subject"
    assert decision.box == (400, 0, 1200, 800)


def test_headroom_keeps_more_space_below_the_face_than_above() -> None:
    decision = crop_box(800, 2000, Bucket(1024, 1024), [face(350, 900, 450, 1000)])
    # Face centre (y 950) at 40% of the 800 px box: 320 px above it, 480 below.
    assert decision.box == (0, 630, 800, 1430)
    assert decision.reason == "keeps the face"


def test_crop_is_deterministic() -> None:
    faces = [face(10, 20, 60, 80), face(500, 20, 560, 90)]
    results = {crop_box(900, 600, Bucket(832, 1216), faces) for _ in range(5)}
    assert len(results) == 1


@pytest.mark.parametrize("name", sorted(face_photos()))
def test_detected_face_inside_every_crop_where_it_can_fit(name: str) -> None:
    photo = face_photos()[name]
    faces = opencv_detector().detect([photo])[0]
    assert faces, f"OpenCV found no face in {name}"
    main = max(faces, key=lambda f: f.area)
    checked = 0
    for target in ("sd15", "sdxl", "flux"):
        buckets = bucket_set(target)
        for bucket in buckets.buckets:
            decision = crop_box(photo.width, photo.height, bucket, faces)
            box_w, box_h = largest_box_size(photo.width, photo.height, bucket)
            if main.width <= box_w and main.height <= box_h:
                assert inside(decision.box, (main.x0, main.y0, main.x1, main.y1)), (target, bucket, decision)
                checked += 1
            else:  # no box of this aspect can hold the head: the crop is centred on it instead
                assert decision.reason.startswith("centred on main face")
                cx, cy = (decision.box[0] + decision.box[2]) / 2, (decision.box[1] + decision.box[3]) / 2
                assert decision.box[0] <= (main.x0 + main.x1) / 2 <= decision.box[2]
                assert decision.box[1] <= (main.y0 + main.y1) / 2 <= decision.box[3]
                assert cx >= 0 and cy >= 0
        chosen = choose_bucket(photo.width, photo.height, buckets, max_upscale=4.0).bucket
        decision = crop_box(photo.width, photo.height, chosen, faces)
        assert inside(decision.box, (main.x0, main.y0, main.x1, main.y1)), (target, chosen, decision)
        assert decision.reason.startswith("keeps")
    assert checked >= 25, checked  # the head fits most buckets of every target


def test_saliency_centre_finds_an_off_centre_object() -> None:
    picture = Image.new("RGB", (800, 600), (120, 130, 140))
    draw = ImageDraw.Draw(picture)
    rng = random.Random(1)
    for _ in range(400):  # a busy patch in the lower right quarter
        x, y = rng.randint(560, 720), rng.randint(380, 520)
        draw.rectangle((x, y, x + 8, y + 8), fill=(rng.randint(0, 255), rng.randint(0, 255), 0))
    cx, cy = saliency_center(picture)
    assert 500 < cx < 780 and 330 < cy < 580
    assert saliency_center(Image.new("RGB", (300, 200), (9, 9, 9))) == (150, 100)
