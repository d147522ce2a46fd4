"""Bucketing: detect faces, choose bucket and crop, render and store the picture (worker); record it (driver).

Worker side (`BucketStage`): each picture is decoded once, at the smallest JPEG draft scale that still serves
both the face detector (its longest side) and the render (the crop box at bucket size), so a 12 MP photo is
mostly decoded at 1/2 or 1/4 scale. Faces and crop boxes are reported in the pixels of the original after
EXIF orientation. Driver side: `select_bucket_work`, `record_bucket` and `bucket_overview` (images per bucket,
pictures needing enlargement, buckets smaller than a batch).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image as PILImage
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from loraforge.catalog.models import Dataset, Derivative, Face, Image, ImageMetadata
from loraforge.catalog.queries import dataset_images
from loraforge.errors import InvalidInput, NotFound
from loraforge.imaging.buckets import (
    Bucket,
    BucketChoice,
    BucketSet,
    bucket_set,
    bucket_summary,
    choose_bucket,
    parse_bucket_list,
    upscale_needed,
)
from loraforge.imaging.crop import crop_box, largest_box_size, saliency_center
from loraforge.imaging.decode import decode, exif_orientation, image_facts, open_checked
from loraforge.imaging.resize import encode, render_crop
from loraforge.models.faces import FaceBox, FaceDetector, build_face_detector, detector_names
from loraforge.stages.base import Item, Resources, Result, error_result
from loraforge.stages.context import Context
from loraforge.stages.options import BucketOptions
from loraforge.storage import ObjectStore, StoreConfig, open_store
from loraforge.storage.keys import derived_key

log = logging.getLogger(__name__)

BUCKET_KIND = "bucket"
WORK_STATUSES = ("pending", "kept")
# Detectors cheap enough to build inside any task; the others hold a model and run in an actor pool.
LIGHT_DETECTORS = frozenset({"opencv"})
_FORMATS = {"jpg": ("jpeg", "image/jpeg"), "png": ("png", "image/png")}
_TRANSPOSING_ORIENTATIONS = {5, 6, 7, 8}
# One detector per worker process, shared by every task that process runs.
_DETECTOR_CACHE: dict[tuple[str, str | None, int], FaceDetector] = {}


@dataclass(frozen=True)
class BucketConfig:
    """Which buckets a target has and how a picture is assigned to one (loraforge.imaging.buckets)."""

    target: str
    resolution: int | None = None
    min_reso: int | None = None
    max_reso: int | None = None
    step: int | None = None
    buckets: str | None = None
    """A user list such as "1024x1024,1152x896"; replaces the target's generated set."""
    max_upscale: float = 1.5
    aspect_tolerance: float = 0.15

    def bucket_set(self) -> BucketSet:
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
    output_format: str = "jpg"
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
        if self.output_format not in _FORMATS:
            raise InvalidInput(f"unknown output format {self.output_format!r}; choose jpg or png")
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
        for key in ("resolution", "min_reso", "max_reso", "step", "buckets"):
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
            "quality": self.jpeg_quality if self.output_format == "jpg" else None,
        }

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
        faces = [_scaled(face, sfx, sfy) for face in self.face_detector().detect([small])[0]]
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
        codec, content_type = _FORMATS[self.output_format]
        payload = encode(rendered, codec, quality=self.jpeg_quality)
        key = derived_key(
            self.dataset_id, item["image_id"], BUCKET_KIND, self.params_hash, self.output_format
        )
        # Object first, row later (the driver): a crash leaves at worst an unreferenced object.
        self._store.put(key, payload, content_type=content_type)
        return {
            "faces": [_face_json(face) for face in faces],
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


@dataclass
class BucketRecord:
    """What one shard recorded: processed image ids and one reason per failed picture."""

    processed: list[str] = field(default_factory=list)
    failed: list[dict[str, str]] = field(default_factory=list)

    def merge(self, other: BucketRecord) -> None:
        self.processed += other.processed
        self.failed += other.failed


def select_bucket_work(session: Session, dataset_id: str, params_hash: str) -> tuple[list[Item], int]:
    """Items for pending or kept pictures with no derivative of these parameters, and how many have one."""
    done = set(
        session.scalars(
            select(Derivative.image_id)
            .join(Image, Image.id == Derivative.image_id)
            .where(
                Image.dataset_id == dataset_id,
                Derivative.kind == BUCKET_KIND,
                Derivative.params_hash == params_hash,
            )
        )
    )
    images = dataset_images(session, dataset_id, statuses=WORK_STATUSES)
    items = [
        {
            "image_id": image.id,
            "object_key": image.object_key,
            "width": image.width,
            "height": image.height,
            "filename": image.original_filename,
        }
        for image in images
        if image.id not in done
    ]
    return items, len(images) - len(items)


def record_bucket(session: Session, stage: BucketStage, results: Sequence[Result]) -> BucketRecord:
    """Faces (replacing this detector's earlier ones), derivative rows and the report's metadata, in one
    session. Safe to call again with the same results (a retried shard)."""
    record = BucketRecord()
    good = []
    for result in results:
        if result.get("error"):
            record.failed.append({"filename": str(result.get("filename")), "reason": str(result["error"])})
        else:
            good.append(result)
    ids = [result["image_id"] for result in good]
    if ids:
        session.execute(delete(Face).where(Face.image_id.in_(ids), Face.detector == stage.detector))
    existing = {
        row.image_id: row
        for row in session.scalars(
            select(Derivative).where(
                Derivative.image_id.in_(ids),
                Derivative.kind == BUCKET_KIND,
                Derivative.params_hash == stage.params_hash,
            )
        )
    }
    params = stage.params()
    for result in good:
        image_id = result["image_id"]
        session.add_all(Face(image_id=image_id, detector=stage.detector, **face) for face in result["faces"])
        outcome = {key: result[key] for key in _OUTCOME_KEYS}
        if image_id not in existing:
            existing[image_id] = Derivative(
                image_id=image_id,
                kind=BUCKET_KIND,
                target=stage.options.target,
                object_key=result["derivative_key"],
                box=result["box"],
                width=result["bucket_width"],
                height=result["bucket_height"],
                params_hash=stage.params_hash,
                # The outcome rides along so a later run with these parameters can restore the report.
                params={**params, "outcome": outcome},
            )
            session.add(existing[image_id])
        record.processed.append(image_id)
    _write_report_metadata(session, {image_id: row.params["outcome"] for image_id, row in existing.items()})
    session.flush()
    return record


_OUTCOME_KEYS = ("crop_reason", "upscale", "flagged", "derivative_sha256", "derivative_bytes")


def make_current(session: Session, dataset: Dataset, stage: BucketStage, *, batch_size: int) -> None:
    """Point the dataset's report at these parameters, and restore the report metadata of pictures done
    by an earlier run with the same parameters."""
    dataset.settings = {  # a new dict, so SQLAlchemy sees the change
        **(dataset.settings or {}),
        "bucket_params_hash": stage.params_hash,
        "bucket_target": stage.options.target,
        "bucket_resolution": stage.options.resolution,
        "bucket_buckets": stage.options.buckets,
        "bucket_max_upscale": stage.options.max_upscale,
        "bucket_detector": stage.detector,
        "bucket_batch_size": batch_size,
    }
    rows = session.execute(
        select(Derivative.image_id, Derivative.params)
        .join(Image, Image.id == Derivative.image_id)
        .where(
            Image.dataset_id == dataset.id,
            Derivative.kind == BUCKET_KIND,
            Derivative.params_hash == stage.params_hash,
        )
    )
    _write_report_metadata(session, {image_id: params.get("outcome", {}) for image_id, params in rows})


def _write_report_metadata(session: Session, outcomes: dict[str, dict[str, Any]]) -> None:
    if not outcomes:
        return
    keys = ("crop_reason", "upscale")
    current = {
        (row.image_id, row.key): row
        for row in session.scalars(
            select(ImageMetadata).where(
                ImageMetadata.image_id.in_(list(outcomes)), ImageMetadata.key.in_(keys)
            )
        )
    }
    for image_id, outcome in outcomes.items():
        for key in keys:
            row = current.get((image_id, key))
            if row is None:
                session.add(ImageMetadata(image_id=image_id, key=key, value=outcome.get(key)))
            elif row.value != outcome.get(key):
                row.value = outcome.get(key)


@dataclass
class BucketOverview:
    """The dataset's current bucketing: images per bucket, pictures needing enlargement, small buckets."""

    params_hash: str
    target: str | None
    images_per_bucket: dict[str, int]
    too_small: list[dict[str, Any]]
    """Pictures the chosen bucket enlarges (upscale > 1), largest first; `flagged` beyond max_upscale."""
    underfilled: dict[str, int]
    batch_size: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def bucket_overview(
    session: Session, dataset: Dataset, *, batch_size: int | None = None
) -> BucketOverview | None:
    """Summary of the derivatives the dataset's report points at; None before the first bucket run."""
    settings = dataset.settings or {}
    params_hash = settings.get("bucket_params_hash")
    if not params_hash:
        return None
    size = batch_size or int(settings.get("bucket_batch_size") or 1)
    max_upscale = float(settings.get("bucket_max_upscale") or 1.0)
    rows = session.execute(
        select(
            Image.id, Image.original_filename, Image.width, Image.height, Derivative.width, Derivative.height
        )
        .join(Derivative, Derivative.image_id == Image.id)
        .where(
            Image.dataset_id == dataset.id,
            Image.status.in_(WORK_STATUSES),
            Derivative.kind == BUCKET_KIND,
            Derivative.params_hash == params_hash,
        )
    )
    choices, names = {}, {}
    for image_id, filename, width, height, bucket_w, bucket_h in rows:
        bucket = Bucket(bucket_w, bucket_h)
        factor = upscale_needed(width, height, bucket)
        choices[image_id] = BucketChoice(bucket, factor, flagged_too_small=factor > 1.0 + 1e-9)
        names[image_id] = filename
    summary = bucket_summary(choices, size)
    too_small = [
        {
            "image_id": image_id,
            "filename": names[image_id],
            "bucket": choices[image_id].bucket.label,
            "upscale": round(factor, 3),
            "flagged": factor > max_upscale + 1e-9,
        }
        for image_id, factor in sorted(summary.too_small.items(), key=lambda kv: (-kv[1], names[kv[0]]))
    ]
    return BucketOverview(
        params_hash=params_hash,
        target=settings.get("bucket_target"),
        images_per_bucket=summary.images_per_bucket,
        too_small=too_small,
        underfilled=summary.underfilled,
        batch_size=size,
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
    config = BucketConfig(
        target=options.target or target,
        resolution=options.resolution,
        min_reso=options.min_reso,
        max_reso=options.max_reso,
        step=options.step,
        buckets=options.buckets,
        max_upscale=options.max_upscale,
    )
    needs_model = options.face_detector not in LIGHT_DETECTORS
    gpus = 1.0 if needs_model and ctx.settings.executor == "ray" and gpu_available() else 0.0
    return BucketStage(
        store_config=ctx.store_config,
        max_pixels=ctx.settings.max_image_pixels,
        dataset_id=dataset_id,
        options=config,
        detector=options.face_detector,
        detector_weights=options.face_weights,
        face_margin=options.face_margin,
        output_format=options.output_format,
        num_gpus=gpus,
    )


def finish_bucketing(
    session: Session, dataset_id: str, stage: BucketStage, *, batch_size: int
) -> dict[str, Any]:
    """Make these parameters the dataset's current ones; returns the bucket overview."""
    dataset = session.get(Dataset, dataset_id)
    if dataset is None:
        raise NotFound(f"dataset {dataset_id} vanished during bucketing")
    make_current(session, dataset, stage, batch_size=batch_size)
    session.flush()
    overview = bucket_overview(session, dataset)
    return overview.to_dict() if overview else {}
