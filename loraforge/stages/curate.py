"""Curation: measure each picture (worker side); check, group and decide over the whole dataset (driver side).

Worker side (`CurateStage`): fetch the original bytes, `loraforge.curation.measure` them once, return the
features as JSON. Driver side: `select_curate_work` (pictures lacking features of the current version),
`record_features` (one image_metadata "features" row per picture), then `curate_dataset`, which runs the
checks, groups duplicates and writes every status in one session. Manual decisions (`review_images`,
images.status_manual) are never overturned; their issues and scores are still refreshed.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.orm import Session

from loraforge.catalog.models import Dataset, Image, ImageMetadata
from loraforge.catalog.queries import dataset_images
from loraforge.curation import (
    CheckContext,
    HashRecord,
    ImageDecision,
    ImageFeatures,
    all_checks,
    decide,
    evaluate,
    measure,
    near_duplicate_groups,
    refine_with_embeddings,
)
from loraforge.curation.dedup import DuplicateGroup
from loraforge.curation.features import FEATURES_VERSION
from loraforge.errors import InvalidInput, NotFound
from loraforge.imaging.decode import load_image
from loraforge.stages.base import Item, Resources, Result, error_result
from loraforge.storage import ObjectStore, StoreConfig, open_store

log = logging.getLogger(__name__)

FEATURES_KEY = "features"
ISSUES_KEY = "issues"
SCORES_KEY = "scores"
EMBEDDING_KEY = "clip_embedding"
EMBED_CHUNK = 64
LARGE_DATASET = 20_000
"""Above this many measured pictures, grouping skips the 90% crop views (seconds instead of minutes)."""
UNREADABLE = "unreadable"
MANUAL_REASONS = {"kept": "kept by hand", "rejected": "rejected by hand"}

Embed = Callable[[Sequence[Image]], Mapping[str, Any]]
"""Pictures -> image id -> embedding vector; pictures it cannot embed are left out."""


@dataclass
class CurateStage:
    """Worker side of curation. Items: image_id, object_key. Stateless: runs as plain Ray tasks."""

    store_config: StoreConfig
    max_pixels: int

    name: str = "curate"
    version: int = FEATURES_VERSION
    resources: Resources = field(default_factory=lambda: Resources(num_cpus=1))
    batch_size: int = 8
    stateful: bool = False

    def __post_init__(self) -> None:
        self._store: ObjectStore | None = None

    def setup(self) -> None:
        if self._store is None:
            self._store = open_store(self.store_config)

    def process_batch(self, items: list[Item]) -> list[Result]:
        self.setup()
        return [self._process(item) for item in items]

    def _process(self, item: Item) -> Result:
        assert self._store is not None
        try:
            features = measure(self._store.get(item["object_key"]), max_pixels=self.max_pixels)
            return {**item, "features": features.to_dict(), "error": None}
        except (InvalidInput, NotFound) as exc:
            # Bad or missing bytes stay bad: recorded, so a re-run does not measure them again.
            return {**error_result(item, str(exc)), "permanent": True}
        except Exception as exc:  # noqa: BLE001 - a store hiccup must not fail the batch; retried next run
            log.warning("curate could not measure image %s: %r", item.get("image_id"), exc)
            return error_result(item, f"unexpected error: {exc!r}")


@dataclass
class MeasureRecord:
    """What one shard recorded: measured image ids and one reason per picture that failed."""

    measured: list[str] = field(default_factory=list)
    failed: list[dict[str, str]] = field(default_factory=list)

    def merge(self, other: MeasureRecord) -> None:
        self.measured += other.measured
        self.failed += other.failed


def select_curate_work(session: Session, dataset_id: str) -> tuple[list[Item], int]:
    """Items for pictures with no features of the current version, and how many already have them."""
    version = ImageMetadata.value["version"].as_integer()
    done = set(
        session.scalars(
            select(ImageMetadata.image_id)
            .join(Image, Image.id == ImageMetadata.image_id)
            .where(
                Image.dataset_id == dataset_id,
                ImageMetadata.key == FEATURES_KEY,
                version == FEATURES_VERSION,
            )
        )
    )
    rows = session.execute(
        select(Image.id, Image.object_key).where(Image.dataset_id == dataset_id).order_by(Image.id)
    )
    items = [{"image_id": image_id, "object_key": key} for image_id, key in rows if image_id not in done]
    return items, len(done)


def record_features(session: Session, results: Sequence[Result]) -> MeasureRecord:
    """Store features, or the reason bytes could not be measured, in one batch; safe to repeat (a retry).

    A failure that may pass (a store error) is reported but not stored, so the next run tries again.
    """
    record = MeasureRecord()
    values: dict[str, dict[str, Any]] = {}
    for result in results:
        image_id = str(result["image_id"])
        if result.get("error"):
            record.failed.append({"image_id": image_id, "reason": str(result["error"])})
            if result.get("permanent"):
                values[image_id] = {"version": FEATURES_VERSION, "error": str(result["error"])}
        else:
            values[image_id] = result["features"]
            record.measured.append(image_id)
    _upsert_metadata(session, FEATURES_KEY, values)
    names = _filenames(session, [f["image_id"] for f in record.failed])
    for failure in record.failed:
        failure["filename"] = names.get(failure["image_id"], failure["image_id"])
    return record


@dataclass(frozen=True)
class CurateConfig:
    """Everything that changes the decisions, resolved from the dataset settings and the caller."""

    target: str
    thresholds: dict[str, float]
    clip_model: str | None = None
    clip_threshold: float = 0.95

    def context(self) -> CheckContext:
        return CheckContext.for_model(self.target, thresholds=self.thresholds)


def summary_rows(result: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Outcome -> pictures, as the CLI, the dashboard and the Prefect artifact show them."""
    rows = [{"outcome": "kept", "images": result["kept"]}]
    rows += [{"outcome": f"rejected: {issue}", "images": n} for issue, n in result["rejected"].items()]
    rows += [{"outcome": f"{kind} duplicate", "images": n} for kind, n in result["duplicates"].items()]
    if result["manual"]:
        rows.append({"outcome": "decided by hand (unchanged)", "images": result["manual"]})
    if result["not_measured"]:
        rows.append({"outcome": "not measured (retry later)", "images": result["not_measured"]})
    return rows


def decide_curation(
    session: Session, dataset_id: str, config: CurateConfig, *, store: ObjectStore, max_pixels: int
) -> CurateSummary:
    """Checks, duplicate groups and one status per picture over the whole dataset (the driver's step)."""
    dataset = session.get(Dataset, dataset_id)
    if dataset is None:
        raise NotFound(f"dataset {dataset_id} vanished during curation")
    embed = None
    if config.clip_model:
        embed = clip_embed(session, store, spec=config.clip_model, max_pixels=max_pixels)
    return curate_dataset(session, dataset, config, embed=embed)


def curate_options(
    dataset: Dataset,
    *,
    thresholds: Mapping[str, float] | None = None,
    target: str | None = None,
    clip_model: str | None = None,
) -> CurateConfig:
    """Merge thresholds given now over the dataset's saved ones and save the result on the dataset."""
    settings = dict(dataset.settings or {})
    curation = dict(settings.get("curation") or {})
    merged = {**(curation.get("thresholds") or {}), **check_thresholds(thresholds or {})}
    options = CurateConfig(
        target=target or dataset.target_model,
        thresholds=merged,
        clip_model=clip_model,
        clip_threshold=float(curation.get("clip_threshold", 0.95)),
    )
    options.context()  # validates the target before anything runs
    if clip_model:
        clip_embedder(clip_model)  # validates the spec; the model itself loads only when needed
    if thresholds:
        # A new dict, so SQLAlchemy sees the change to the JSON column.
        dataset.settings = {**settings, "curation": {**curation, "thresholds": merged}}
    return options


def check_thresholds(thresholds: Mapping[str, float]) -> dict[str, float]:
    """Thresholds by check name as floats; InvalidInput naming what is wrong."""
    known = sorted(all_checks())
    out = {}
    for name, value in thresholds.items():
        if name not in known:
            raise InvalidInput(f"unknown check {name!r} in thresholds; known: {', '.join(known)}")
        try:
            number = float(value)
        except (TypeError, ValueError) as exc:
            raise InvalidInput(f"threshold of {name} must be a number, not {value!r}") from exc
        if not math.isfinite(number) or number < 0.0:
            raise InvalidInput(f"threshold of {name} must be 0 or more (above 1 turns the check off)")
        out[name] = number
    return out


@dataclass
class CurateSummary:
    """Counts of one curation pass over a dataset."""

    images: int = 0
    kept: int = 0
    rejected: dict[str, int] = field(default_factory=dict)
    """Issue name -> rejected pictures showing it (a picture with two issues counts under both)."""
    rejected_images: int = 0
    duplicates: dict[str, int] = field(default_factory=lambda: {"exact": 0, "near": 0})
    manual: int = 0
    not_measured: int = 0
    groups: int = 0
    embedded: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def curate_dataset(
    session: Session, dataset: Dataset, options: CurateConfig, *, embed: Embed | None = None
) -> CurateSummary:
    """Check, group and decide every picture of the dataset; statuses and metadata written in this session.

    `embed`, when given, computes embeddings of the pictures in near-duplicate groups, and members that
    do not look alike by them leave their group (refine_with_embeddings).
    """
    context = options.context()
    images = dataset_images(session, dataset.id)
    by_id = {image.id: image for image in images}
    stored = _metadata(session, list(by_id), FEATURES_KEY)
    outcomes, records, unreadable = {}, [], {}
    for image in images:
        value = stored.get(image.id)
        if not value or value.get("version") != FEATURES_VERSION:
            continue
        if value.get("error"):
            unreadable[image.id] = str(value["error"])
            continue
        features = ImageFeatures.from_dict(value)
        outcomes[image.id] = evaluate(features, context)
        records.append(
            HashRecord.from_features(
                image.id,
                features,
                issue_count=sum(o.flagged for o in outcomes[image.id]),
                manual_keep=image.status_manual and image.status == "kept",
                manual_reject=image.status_manual and image.status in ("rejected", "duplicate"),
            )
        )
    if len(records) > LARGE_DATASET:
        # The crop views cost most of the search; past this size they would take minutes (dedup.py).
        log.info("%d pictures: near duplicates by full and mirrored hashes only", len(records))
        groups = near_duplicate_groups(records, max_distance=10, crop_max_distance=None)
    else:
        groups = near_duplicate_groups(records)
    summary = CurateSummary(images=len(images), not_measured=len(images) - len(outcomes) - len(unreadable))
    if embed is not None:
        vectors = embed([by_id[i] for i in _embedding_candidates(groups)])
        summary.embedded = len(vectors)
        groups = refine_with_embeddings(groups, vectors, threshold=options.clip_threshold)
    summary.groups = len(groups)
    manual_ids = {image.id for image in images if image.status_manual}
    decisions = decide(outcomes, groups, manual_ids=manual_ids)
    decisions += [
        ImageDecision(
            image_id,
            None if image_id in manual_ids else "rejected",
            f"{UNREADABLE}: {reason}",
            None,
            (UNREADABLE,),
            {},
            manual=image_id in manual_ids,
        )
        for image_id, reason in unreadable.items()
    ]
    _apply(session, by_id, decisions, summary)
    return summary


def _embedding_candidates(groups: Sequence[DuplicateGroup]) -> list[str]:
    ids: dict[str, None] = {}
    for group in groups:
        near = [m.id for m in group.members if m.kind == "near"]
        if near:
            ids.update(dict.fromkeys([group.keeper, *near]))
    return list(ids)


def _apply(
    session: Session, by_id: Mapping[str, Image], decisions: Sequence[ImageDecision], summary: CurateSummary
) -> None:
    issues, scores = {}, {}
    for decision in decisions:
        image = by_id[decision.image_id]
        issues[image.id], scores[image.id] = list(decision.issues), decision.scores
        if decision.manual:
            summary.manual += 1
            continue
        reason = decision.status_reason
        if decision.duplicate_of and reason:
            # The keeper by the name the user knows it, not its id.
            reason = reason.replace(decision.duplicate_of, by_id[decision.duplicate_of].original_filename)
        if (image.status, image.status_reason, image.duplicate_of) != (
            decision.status,
            reason,
            decision.duplicate_of,
        ):
            image.status = decision.status or image.status
            image.status_reason, image.duplicate_of = reason, decision.duplicate_of
        if decision.status == "kept":
            summary.kept += 1
        elif decision.status == "duplicate":
            summary.duplicates["exact" if "exact_duplicate" in decision.issues else "near"] += 1
        else:
            summary.rejected_images += 1
            for issue in decision.issues:
                summary.rejected[issue] = summary.rejected.get(issue, 0) + 1
    summary.rejected = dict(sorted(summary.rejected.items(), key=lambda kv: (-kv[1], kv[0])))
    _upsert_metadata(session, ISSUES_KEY, issues)
    _upsert_metadata(session, SCORES_KEY, scores)
    session.flush()


def clip_embed(session: Session, store: ObjectStore, *, spec: str, max_pixels: int) -> Embed:
    """An Embed function over a CLIP model, reusing vectors stored by earlier runs with the same model.

    `spec` is "MODEL:WEIGHTS": an open_clip model name and a checkpoint path (or a file under
    LORAFORGE_MODEL_DIR, or an open_clip pretrained tag), e.g. "ViT-B-32:laion2b_s34b_b79k".
    """
    embedder = clip_embedder(spec)

    def embed(images: Sequence[Image]) -> dict[str, Any]:
        import numpy as np

        cached = _metadata(session, [image.id for image in images], EMBEDDING_KEY)
        vectors = {
            image_id: np.asarray(value["vector"], dtype=np.float32)
            for image_id, value in cached.items()
            if isinstance(value, dict) and value.get("model") == spec
        }
        todo = [image for image in images if image.id not in vectors]
        fresh: dict[str, Any] = {}
        for start in range(0, len(todo), EMBED_CHUNK):
            pictures, ids = [], []
            for image in todo[start : start + EMBED_CHUNK]:
                try:
                    data = store.get(image.object_key)
                    pictures.append(load_image(data, max_pixels=max_pixels, draft_size=(448, 448)))
                    ids.append(image.id)
                except (InvalidInput, NotFound) as exc:
                    log.warning("no embedding for %s: %s", image.original_filename, exc)
            if pictures:
                fresh.update(zip(ids, embedder.embed(pictures), strict=True))
        _upsert_metadata(
            session,
            EMBEDDING_KEY,
            {i: {"model": spec, "vector": [round(float(x), 6) for x in v]} for i, v in fresh.items()},
        )
        return {**vectors, **fresh}

    return embed


def clip_embedder(spec: str) -> Any:
    """The ClipEmbedder a "MODEL:WEIGHTS" spec names; InvalidInput when the weights are not named."""
    from loraforge.models.clip import ClipEmbedder

    name, _, weights = spec.partition(":")
    if not name.strip() or not weights.strip():
        raise InvalidInput(
            f"CLIP model {spec!r} must be MODEL:WEIGHTS, e.g. ViT-B-32:laion2b_s34b_b79k or "
            "ViT-B-32:/models/clip.pt (without weights the embeddings would mean nothing)"
        )
    return ClipEmbedder(name.strip(), pretrained=weights.strip())


@dataclass(frozen=True)
class ReviewChange:
    image_id: str
    filename: str
    status: str
    previous: str
    reason: str | None


def review_images(
    session: Session, dataset: Dataset, refs: Sequence[str], *, status: str, reason: str | None = None
) -> list[ReviewChange]:
    """Keep or reject pictures by hand (filename as in the report, or image id); a later curate keeps it.

    status "auto" hands the pictures back to curation: the next `curate` decides them again.
    """
    if status not in ("kept", "rejected", "auto"):
        raise InvalidInput(f"review status must be kept, rejected or auto, not {status!r}")
    if not refs:
        raise InvalidInput("name at least one picture (filename as in the report, or image id)")
    images = resolve_images(session, dataset, refs)
    changes = []
    for image in images:
        previous = image.status
        if status == "auto":
            image.status_manual = False
            text = None
        else:
            text = reason or MANUAL_REASONS[status]
            image.status, image.status_reason, image.duplicate_of = status, text, None
            image.status_manual = True
        changes.append(ReviewChange(image.id, image.original_filename, image.status, previous, text))
    session.flush()
    return changes


def resolve_images(session: Session, dataset: Dataset, refs: Sequence[str]) -> list[Image]:
    """Pictures of the dataset by id or original filename, in the given order, each once."""
    images = dataset_images(session, dataset.id)
    by_id = {image.id: image for image in images}
    by_name: dict[str, list[Image]] = {}
    for image in images:
        by_name.setdefault(image.original_filename, []).append(image)
    found: dict[str, Image] = {}
    missing, ambiguous = [], []
    for ref in refs:
        matches = [by_id[ref]] if ref in by_id else by_name.get(ref, [])
        if not matches:
            missing.append(ref)
        elif len(matches) > 1:
            ambiguous.append(ref)
        else:
            found.setdefault(matches[0].id, matches[0])
    if missing:
        raise NotFound(f"no picture named {', '.join(missing)} in dataset {dataset.name!r}")
    if ambiguous:
        raise InvalidInput(f"several pictures are named {', '.join(ambiguous)}: use the image id instead")
    return list(found.values())


def _metadata(session: Session, ids: Sequence[str], key: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for start in range(0, len(ids), 10_000):
        rows = session.execute(
            select(ImageMetadata.image_id, ImageMetadata.value).where(
                ImageMetadata.key == key, ImageMetadata.image_id.in_(ids[start : start + 10_000])
            )
        )
        out.update((image_id, value) for image_id, value in rows)
    return out


def _upsert_metadata(session: Session, key: str, values: Mapping[str, Any]) -> None:
    """Insert or update one metadata key for many images with two executemany statements."""
    if not values:
        return
    current = _metadata(session, list(values), key)
    new = [{"image_id": i, "key": key, "value": v} for i, v in values.items() if i not in current]
    changed = [{"b_id": i, "b_value": v} for i, v in values.items() if i in current and current[i] != v]
    if new:
        session.execute(insert(ImageMetadata), new)
    if changed:
        table = ImageMetadata.__table__
        session.execute(
            update(table)
            .where(table.c.image_id == bindparam("b_id"), table.c.key == key)
            .values(value=bindparam("b_value")),
            changed,
        )


def _filenames(session: Session, ids: Sequence[str]) -> dict[str, str]:
    if not ids:
        return {}
    rows = session.execute(select(Image.id, Image.original_filename).where(Image.id.in_(list(ids))))
    return {image_id: name for image_id, name in rows}
