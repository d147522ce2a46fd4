"""Bucketing records in the catalog: work to do, recording faces and derivatives, the current overview."""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from loraforge.catalog.models import Dataset, Derivative, Face, Image, ImageMetadata
from loraforge.catalog.queries import dataset_images
from loraforge.errors import NotFound
from loraforge.imaging.buckets import Bucket, BucketChoice, bucket_summary, upscale_needed
from loraforge.stages.base import Item, Result
from loraforge.stages.curate_identity import matched_face_boxes

if TYPE_CHECKING:
    from loraforge.stages.bucket import BucketStage

BUCKET_KIND = "bucket"
WORK_STATUSES = ("pending", "kept")
CROPPED_FOR = "cropped_for"
"""Derivative params key: the matched face box a crop of several faces kept (None: no references then),
or ONE_FACE when the picture had at most one face, so the references cannot change its crop."""
ONE_FACE = "one face"


@dataclass
class BucketRecord:
    """What one shard recorded: processed image ids and one reason per failed picture."""

    processed: list[str] = field(default_factory=list)
    failed: list[dict[str, str]] = field(default_factory=list)

    def merge(self, other: BucketRecord) -> None:
        self.processed += other.processed
        self.failed += other.failed


def select_bucket_work(session: Session, dataset_id: str, params_hash: str) -> tuple[list[Item], int]:
    """Items for pending or kept pictures with no derivative of these parameters, and how many have one.

    A derivative of a picture with several faces, cropped for another matched face than the current one
    (reference faces set or changed since), is work again: the crop must now keep the person's face."""
    made_for = {
        image_id: (params or {}).get(CROPPED_FOR)
        for image_id, params in session.execute(
            select(Derivative.image_id, Derivative.params)
            .join(Image, Image.id == Derivative.image_id)
            .where(
                Image.dataset_id == dataset_id,
                Derivative.kind == BUCKET_KIND,
                Derivative.params_hash == params_hash,
            )
        )
    }
    images = dataset_images(session, dataset_id, statuses=WORK_STATUSES)
    dataset = session.get(Dataset, dataset_id)
    identity_boxes = (
        matched_face_boxes(session, dataset, [i.id for i in images]) if dataset is not None else {}
    )
    items = [
        {
            "image_id": image.id,
            "object_key": image.object_key,
            "width": image.width,
            "height": image.height,
            "filename": image.original_filename,
            "identity_box": identity_boxes.get(image.id),
        }
        for image in images
        if image.id not in made_for or _stale(made_for[image.id], identity_boxes.get(image.id))
    ]
    return items, len(images) - len(items)


def _stale(cropped_for: Any, identity_box: Sequence[float] | None) -> bool:
    if cropped_for == ONE_FACE:
        return False
    return _box_key(cropped_for) != _box_key(identity_box)


def _box_key(box: Sequence[float] | None) -> tuple[float, ...] | None:
    """A face box as compared between runs (JSON round trips, tenths of a pixel)."""
    return None if not box else tuple(round(float(v), 1) for v in box)


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
        row = existing.get(image_id)
        if row is None:
            row = Derivative(
                image_id=image_id,
                kind=BUCKET_KIND,
                target=stage.options.target,
                params_hash=stage.params_hash,
            )
            session.add(row)
            existing[image_id] = row
        # A row of these parameters made again (a new matched face) takes the new crop: the object at its
        # key was overwritten already.
        row.object_key = result["derivative_key"]
        row.box = result["box"]
        row.width, row.height = result["bucket_width"], result["bucket_height"]
        # The outcome rides along so a later run with these parameters can restore the report; the face
        # it was cropped for tells select_bucket_work when the crop is stale.
        cropped_for = result.get("identity_box") if len(result["faces"]) > 1 else ONE_FACE
        row.params = {**params, "outcome": outcome, CROPPED_FOR: cropped_for}
        record.processed.append(image_id)
    _write_report_metadata(session, {image_id: row.params["outcome"] for image_id, row in existing.items()})
    session.flush()
    return record


_OUTCOME_KEYS = ("crop_reason", "upscale", "flagged", "derivative_sha256", "derivative_bytes")


def trainer_run_key(trainer: str, target: str) -> str:
    """Key of `bucket_runs` in the dataset's settings: the last run cut for this trainer and model."""
    return f"{trainer}/{target}"


def make_current(session: Session, dataset: Dataset, stage: BucketStage, *, batch_size: int) -> None:
    """Point the dataset's report at these parameters, and restore the report metadata of pictures done
    by an earlier run with the same parameters. A run for a trainer is also remembered as that trainer's,
    so an export for it takes these derivatives even after runs for other trainers."""
    settings = dict(dataset.settings or {})
    runs = dict(settings.get("bucket_runs") or {})
    if stage.options.trainer is not None:
        runs[trainer_run_key(stage.options.trainer, stage.options.target)] = {
            "params_hash": stage.params_hash,
            "resolution": stage.options.training_resolution,
        }
    dataset.settings = {  # a new dict, so SQLAlchemy sees the change
        **settings,
        "bucket_runs": runs,
        "bucket_params_hash": stage.params_hash,
        "bucket_target": stage.options.target,
        "bucket_trainer": stage.options.trainer,
        "bucket_resolution": stage.options.training_resolution,
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
    trainer: str | None
    """The trainer whose rule the buckets follow; None: the model's generic grid."""
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
    choices: dict[Hashable, BucketChoice] = {}
    names: dict[Hashable, str] = {}
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
        trainer=settings.get("bucket_trainer"),
        images_per_bucket=summary.images_per_bucket,
        too_small=too_small,
        underfilled=summary.underfilled,
        batch_size=size,
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
