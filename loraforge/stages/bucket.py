"""Bucketing: detect faces, choose bucket and crop, render and store the picture (worker); record it (driver).

The buckets are a trainer's own (`--trainer`: the rule its exporter declares) so that trainer takes every
picture as it is, or the model's generic grid, or a user list (`BucketConfig.bucket_set`).

Worker side (`BucketStage`): each picture is decoded once, at the smallest JPEG draft scale that still serves
both the face detector (its longest side) and the render (the crop box at bucket size), so a 12 MP photo is
mostly decoded at 1/2 or 1/4 scale. Faces and crop boxes are reported in the pixels of the original after
EXIF orientation. Driver side (`bucket_records`, re-exported here): `select_bucket_work`, `record_bucket`
and `bucket_overview` (images per bucket, pictures needing enlargement, buckets smaller than a batch).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image as PILImage

from loraforge.curation.identity import keep_matching_face
from loraforge.errors import InvalidInput
from loraforge.exporters.buckets import trainer_rule
from loraforge.imaging.buckets import BucketSet, bucket_set, choose_bucket, parse_bucket_list
from loraforge.imaging.crop import crop_box, largest_box_size, saliency_center
from loraforge.imaging.decode import decode, exif_orientation, image_facts, open_checked
from loraforge.imaging.resize import encode, render_crop
from loraforge.models.faces import FaceBox, FaceDetector, build_face_detector, detector_names
from loraforge.stages.base import Item, Resources, Result, error_result
from loraforge.stages.bucket_records import (
    BUCKET_KIND,
    WORK_STATUSES,
    BucketOverview,
    BucketRecord,
    bucket_overview,
    finish_bucketing,
    make_current,
    record_bucket,
    select_bucket_work,
)
from loraforge.stages.context import Context
from loraforge.stages.options import BucketOptions
from loraforge.storage import ObjectStore, StoreConfig, open_store
from loraforge.storage.keys import derived_key
from loraforge.targets import target_facts

log = logging.getLogger(__name__)

__all__ = [
    "BUCKET_KIND",
    "LIGHT_DETECTORS",
    "WORK_STATUSES",
    "BucketConfig",
    "BucketOverview",
    "BucketRecord",
    "BucketStage",
    "bucket_overview",
    "build_bucket_stage",
    "finish_bucketing",
    "make_current",
    "record_bucket",
    "select_bucket_work",
]

# Detectors cheap enough to build inside any task; the others hold a model and run in an actor pool.
LIGHT_DETECTORS = frozenset({"opencv"})
_FORMATS = {
    "jpg": ("jpeg", "image/jpeg"),
    "png": ("png", "image/png"),
    "webp": ("webp", "image/webp"),
}
_TRANSPOSING_ORIENTATIONS = {5, 6, 7, 8}
# One detector per worker process, shared by every task that process runs.
_DETECTOR_CACHE: dict[tuple[str, str | None, int], FaceDetector] = {}


@dataclass(frozen=True)
class BucketConfig:
    """Which buckets a target has and how a picture is assigned to one (loraforge.imaging.buckets): a
    trainer's own (loraforge.exporters.buckets), or the model's generic grid, or a user list."""

    target: str
    trainer: str | None = None
    """Export format whose trainer the pictures are cut for; None: the model's generic grid."""
    resolution: int | None = None
    min_reso: int | None = None
    max_reso: int | None = None
    step: int | None = None
    buckets: str | None = None
    """A user list such as "1024x1024,1152x896"; replaces the target's generated set."""
    max_upscale: float = 1.5
    aspect_tolerance: float = 0.15

    @property
    def training_resolution(self) -> int:
        """The resolution the buckets are for: the one given, else the target model's."""
        return self.resolution or target_facts(self.target).resolution

    def bucket_set(self) -> BucketSet:
        if self.trainer is not None:
            if self.buckets or self.step or self.min_reso or self.max_reso:
                raise InvalidInput("a trainer's buckets follow its own rule: give no list, step or limits")
            return trainer_rule(self.trainer, self.target, self.resolution).buckets()
        if self.buckets:
            return parse_bucket_list(self.buckets, name=self.target)
        return bucket_set(
            self.target,
            resolution=self.resolution,
            min_reso=self.min_reso,
            max_reso=self.max_reso,
            step=self.step,
        )


@dataclass
class BucketStage:
    """Worker side of bucketing. Items: image_id, object_key, width, height (after EXIF orientation)."""

    store_config: StoreConfig
    max_pixels: int
    dataset_id: str
    options: BucketConfig
    detector: str = "opencv"
    detector_weights: str | None = None
    face_margin: float = 0.25
    subject_fallback: bool = True
    """Without faces, centre the crop on the most salient region instead of the picture centre."""
    output_format: str = "auto"
    """jpg, png, webp, or auto: PNG sources stay PNG (lossless, as their author chose), the rest JPEG."""
    jpeg_quality: int = 95
    detect_area: int = 512 * 384
    """Pixels of the copy the face detector sees, whatever the aspect ratio. Detection costs grow with it;
    OpenCV's cascade needs faces of about 40 px in it (about 10% of the short side at the default)."""
    detect_side: int = 1024
    """Longest side a detector may resize to (RetinaFace always resizes to it)."""
    num_gpus: float = 0.0

    name: str = "bucket"
    version: int = 1
    batch_size: int = 2
    """Small batches keep both ends of a shard busy: one picture is a few hundred ms of work."""
    resources: Resources = field(init=False)
    stateful: bool = field(init=False)

    def __post_init__(self) -> None:
        if self.output_format != "auto" and self.output_format not in _FORMATS:
            raise InvalidInput(
                f"unknown image format {self.output_format!r}; choose auto, {', '.join(_FORMATS)}"
            )
        if self.detector not in detector_names():
            raise InvalidInput(
                f"unknown face detector {self.detector!r}; choose {', '.join(detector_names())}"
            )
        self.buckets = self.options.bucket_set()  # validates the options in the driver already
        self.stateful = self.detector not in LIGHT_DETECTORS
        self.resources = Resources(num_cpus=1, num_gpus=self.num_gpus if self.stateful else 0.0)
        canonical = json.dumps(self.params(), sort_keys=True, separators=(",", ":"))
        self.params_hash = hashlib.sha256(canonical.encode()).hexdigest()[:16]
        self._store: ObjectStore | None = None

    def params(self) -> dict[str, Any]:
        """Everything that changes the output; the resolved bucket list makes `--resolution 1024` and the
        SDXL default the same parameters."""
        options = asdict(self.options)
        # The trainer is not a parameter of the pictures: two trainers whose rules give the same buckets
        # share their derivatives, so exporting for the second renders nothing new.
        for key in ("trainer", "resolution", "min_reso", "max_reso", "step", "buckets"):
            options.pop(key)
        weights = Path(self.detector_weights).name if self.detector_weights else None
        return {
            "stage_version": self.version,
            **options,
            "buckets": self.buckets.labels,
            "detector": self.detector,
            "detector_weights": weights,
            "detect_area": self.detect_area,
            "detect_side": self.detect_side,
            "face_margin": self.face_margin,
            "subject_fallback": self.subject_fallback,
            "format": self.output_format,
            "quality": self.jpeg_quality if self.output_format != "png" else None,
        }

    def file_format(self, source_format: str | None) -> str:
        """The format a picture is written in: the chosen one, or under auto PNG for PNG sources."""
        if self.output_format != "auto":
            return self.output_format
        return "png" if source_format == "PNG" else "jpg"

    def setup(self) -> None:
        if self._store is None:
            self._store = open_store(self.store_config)
        self.face_detector()

    def face_detector(self) -> FaceDetector:
        key = (self.detector, self.detector_weights, self.detect_side)
        if key not in _DETECTOR_CACHE:
            _DETECTOR_CACHE[key] = build_face_detector(
                self.detector, weights=self.detector_weights, max_size=self.detect_side
            )
        return _DETECTOR_CACHE[key]

    def process_batch(self, items: list[Item]) -> list[Result]:
        self.setup()
        return [self._process_safely(item) for item in items]

    def _process_safely(self, item: Item) -> Result:
        try:
            return {**item, **self._process(item), "error": None}
        except InvalidInput as exc:
            return error_result(item, str(exc))
        except Exception as exc:  # noqa: BLE001 - one bad picture must never fail the batch
            log.exception("bucket failed for image %s", item.get("image_id"))
            return error_result(item, f"unexpected error: {exc!r}")

    def _process(self, item: Item) -> dict[str, Any]:
        assert self._store is not None
        opened = open_checked(self._store.get(item["object_key"]), max_pixels=self.max_pixels)
        facts = image_facts(opened)
        width, height = facts.width, facts.height
        choice = choose_bucket(
            width,
            height,
            self.buckets,
            max_upscale=self.options.max_upscale,
            aspect_tolerance=self.options.aspect_tolerance,
        )
        bucket = choice.bucket
        image = decode(opened, draft_size=self._draft_size(opened, width, height, bucket))
        fx, fy = width / image.width, height / image.height
        # Detection and saliency share one small copy of a fixed area: sized by area rather than by the
        # longest side, a tall or wide picture keeps enough pixels across its faces.
        shrink = math.sqrt(self.detect_area / (image.width * image.height))
        small = image
        if shrink < 1.0:
            size = (max(1, round(image.width * shrink)), max(1, round(image.height * shrink)))
            small = image.resize(size, PILImage.Resampling.BILINEAR, reducing_gap=2.0)
        sfx, sfy = width / small.width, height / small.height
        detected = [_scaled(face, sfx, sfy) for face in self.face_detector().detect([small])[0]]
        # With reference faces, a picture of several people is cropped around the person (identity filter).
        faces = keep_matching_face(detected, item.get("identity_box"))
        subject = None
        if not faces and self.subject_fallback:
            sx, sy = saliency_center(small)
            subject = (sx * sfx, sy * sfy)
        decision = crop_box(width, height, bucket, faces, margin=self.face_margin, subject_center=subject)
        x0, y0, x1, y1 = decision.box
        box = (x0 / fx, y0 / fy, min(float(image.width), x1 / fx), min(float(image.height), y1 / fy))
        rendered = render_crop(image, box, bucket)
        if rendered.size != (bucket.width, bucket.height):
            raise AssertionError(f"rendered {rendered.size}, bucket {bucket.label}")
        fmt = self.file_format(opened.format)
        codec, content_type = _FORMATS[fmt]
        payload = encode(rendered, codec, quality=self.jpeg_quality)
        key = derived_key(self.dataset_id, item["image_id"], BUCKET_KIND, self.params_hash, fmt)
        # Object first, row later (the driver): a crash leaves at worst an unreferenced object.
        self._store.put(key, payload, content_type=content_type)
        return {
            "faces": [_face_json(face) for face in detected],
            "bucket": bucket.label,
            "bucket_width": bucket.width,
            "bucket_height": bucket.height,
            "box": list(decision.box),
            "crop_reason": decision.reason,
            "upscale": round(choice.upscale_factor, 4),
            "flagged": choice.flagged_too_small,
            "derivative_key": key,
            "derivative_bytes": len(payload),
            "derivative_sha256": hashlib.sha256(payload).hexdigest(),
        }

    def _draft_size(self, opened: Any, width: int, height: int, bucket: Any) -> tuple[int, int] | None:
        """The smallest decode that still gives the detector its side and the crop its bucket pixels."""
        box_w, box_h = largest_box_size(width, height, bucket)
        render_scale = max(bucket.width / box_w, bucket.height / box_h)
        detect_scale = math.sqrt(self.detect_area / (width * height))
        scale = max(render_scale, detect_scale)
        if scale >= 1.0:
            return None
        wanted = (math.ceil(width * scale), math.ceil(height * scale))
        if exif_orientation(opened) in _TRANSPOSING_ORIENTATIONS:
            wanted = (wanted[1], wanted[0])  # draft() works on the stored, unrotated frame
        return wanted


def _scaled(face: FaceBox, fx: float, fy: float) -> FaceBox:
    landmarks = [(x * fx, y * fy) for x, y in face.landmarks] if face.landmarks else None
    return FaceBox(face.x0 * fx, face.y0 * fy, face.x1 * fx, face.y1 * fy, face.score, landmarks)


def _face_json(face: FaceBox) -> dict[str, Any]:
    return {
        "bbox": [round(v, 1) for v in (face.x0, face.y0, face.x1, face.y1)],
        "score": round(face.score, 4),
        "landmarks": [[round(x, 1), round(y, 1)] for x, y in face.landmarks] if face.landmarks else None,
    }


def bucket_config(options: BucketOptions, *, target: str) -> BucketConfig:
    """The bucket rule the options describe, for the dataset's target unless they name one."""
    return BucketConfig(
        target=options.target or target,
        trainer=options.trainer,
        resolution=options.resolution,
        min_reso=options.min_reso,
        max_reso=options.max_reso,
        step=options.step,
        buckets=options.buckets,
        max_upscale=options.max_upscale,
    )


def build_bucket_stage(
    ctx: Context,
    dataset_id: str,
    options: BucketOptions,
    *,
    target: str,
    gpu_available: Callable[[], bool] = lambda: False,
) -> BucketStage:
    """The stage as every run builds it (the benchmark too); model detectors get a GPU when one is there."""
    config = bucket_config(options, target=target)
    needs_model = options.face_detector not in LIGHT_DETECTORS
    gpus = 1.0 if needs_model and ctx.settings.executor != "inline" and gpu_available() else 0.0
    return BucketStage(
        store_config=ctx.store_config,
        max_pixels=ctx.settings.max_image_pixels,
        dataset_id=dataset_id,
        options=config,
        detector=options.face_detector,
        detector_weights=options.face_weights,
        face_margin=options.face_margin,
        output_format=options.image_format,
        num_gpus=gpus,
    )
