"""Curation decisions over a whole dataset: options and thresholds, checks, duplicate groups, statuses."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from sqlalchemy.orm import Session

from loraforge.catalog.models import Dataset, Image
from loraforge.catalog.queries import dataset_images
from loraforge.curation import (
    CheckContext,
    HashRecord,
    ImageDecision,
    ImageFeatures,
    all_checks,
    decide,
    evaluate,
    near_duplicate_groups,
    refine_with_embeddings,
)
from loraforge.curation.dedup import DuplicateGroup
from loraforge.curation.features import FEATURES_VERSION
from loraforge.curation.registry import CheckOutcome, check_reject_names
from loraforge.errors import InvalidInput, NotFound
from loraforge.stages.curate_identity import (
    IdentityConfig,
    default_embedder,
    face_embeddings,
    identity_config,
    identity_outcomes,
    record_identity,
)
from loraforge.stages.curate_records import (
    FEATURES_KEY,
    ISSUES_KEY,
    SCORES_KEY,
    Embed,
    _metadata,
    _upsert_metadata,
    clip_embed,
    clip_embedder,
)
from loraforge.storage import ObjectStore

log = logging.getLogger(__name__)

LARGE_DATASET = 20_000
"""Above this many measured pictures, grouping skips the 90% crop views (seconds instead of minutes)."""
UNREADABLE = "unreadable"
FaceEmbed = Callable[[Sequence[Image]], Mapping[str, Any]]
"""Pictures -> image id -> its faces (FaceEmbedding, largest first); unreadable pictures are left out."""


@dataclass(frozen=True)
class CurateConfig:
    """Everything that changes the decisions, resolved from the dataset settings and the caller."""

    target: str
    thresholds: dict[str, float]
    clip_model: str | None = None
    clip_threshold: float = 0.95
    reject: tuple[str, ...] = ()
    """Tagging checks (grayscale) that reject here, as the user asked."""
    identity: IdentityConfig | None = None
    """Reference faces saved on the dataset: pictures of anyone else get the `other_person` issue."""

    def context(self) -> CheckContext:
        return CheckContext.for_model(self.target, thresholds=self.thresholds, reject=self.reject)


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
    faces = None
    if config.identity is not None:
        model = config.identity.model

        def faces(images: Sequence[Image]) -> Mapping[str, Any]:
            return face_embeddings(
                session, store, images, model=model, embedder=default_embedder, max_pixels=max_pixels
            )

    return curate_dataset(session, dataset, config, embed=embed, faces=faces)


def curate_options(
    dataset: Dataset,
    *,
    thresholds: Mapping[str, float] | None = None,
    target: str | None = None,
    clip_model: str | None = None,
    reject: Sequence[str] | None = None,
) -> CurateConfig:
    """Merge thresholds given now over the dataset's saved ones and save the result on the dataset; the
    tagging checks to reject on (`reject`), when given, replace the saved ones."""
    settings = dict(dataset.settings or {})
    curation = dict(settings.get("curation") or {})
    merged = {**(curation.get("thresholds") or {}), **check_thresholds(thresholds or {})}
    if reject is not None:
        check_reject_names(reject)
    rejecting = tuple(sorted(set(reject if reject is not None else curation.get("reject") or ())))
    options = CurateConfig(
        target=target or dataset.target_model,
        thresholds=merged,
        clip_model=clip_model,
        clip_threshold=float(curation.get("clip_threshold", 0.95)),
        reject=rejecting,
        identity=identity_config(dataset),
    )
    options.context()  # validates the target before anything runs
    if clip_model:
        clip_embedder(clip_model)  # validates the spec; the model itself loads only when needed
    if thresholds or reject is not None:
        # A new dict, so SQLAlchemy sees the change to the JSON column.
        saved = {**curation, "thresholds": merged, "reject": list(rejecting)}
        dataset.settings = {**settings, "curation": saved}
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
    faces_scored: int = 0
    """Pictures with a face compared with the dataset's reference faces."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def curate_dataset(
    session: Session,
    dataset: Dataset,
    options: CurateConfig,
    *,
    embed: Embed | None = None,
    faces: FaceEmbed | None = None,
) -> CurateSummary:
    """Check, group and decide every picture of the dataset; statuses and metadata written in this session.

    `embed`, when given, computes embeddings of the pictures in near-duplicate groups, and members that
    do not look alike by them leave their group (refine_with_embeddings). `faces`, with reference faces
    in the options, gives each readable picture's faces: those matching no reference get `other_person`.
    """
    context = options.context()
    images = dataset_images(session, dataset.id)
    by_id = {image.id: image for image in images}
    stored = _metadata(session, list(by_id), FEATURES_KEY)
    outcomes, records, unreadable = {}, [], {}
    measured: dict[str, ImageFeatures] = {}
    ingested = sorted(images, key=lambda image: (image.created_at, image.original_filename, image.id))
    ingest_order = {image.id: position for position, image in enumerate(ingested)}
    for image in images:
        value = stored.get(image.id)
        if not value or value.get("version") != FEATURES_VERSION:
            continue
        if value.get("error"):
            unreadable[image.id] = str(value["error"])
            continue
        measured[image.id] = ImageFeatures.from_dict(value)
        outcomes[image.id] = evaluate(measured[image.id], context)
    identity_scored = _add_identity(session, images, outcomes, options.identity, faces)
    for image in images:
        if image.id not in measured:
            continue
        records.append(
            HashRecord.from_features(
                image.id,
                measured[image.id],
                issue_count=sum(o.flagged and o.rejects for o in outcomes[image.id]),
                manual_keep=image.status_manual and image.status == "kept",
                manual_reject=image.status_manual and image.status in ("rejected", "duplicate"),
                ingest_order=ingest_order[image.id],
            )
        )
    if len(records) > LARGE_DATASET:
        # The crop views cost most of the search; past this size they would take minutes (dedup.py).
        log.info("%d pictures: near duplicates by full and mirrored hashes only", len(records))
        groups = near_duplicate_groups(records, max_distance=10, crop_max_distance=None)
    else:
        groups = near_duplicate_groups(records)
    summary = CurateSummary(images=len(images), not_measured=len(images) - len(outcomes) - len(unreadable))
    summary.faces_scored = identity_scored
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


def _add_identity(
    session: Session,
    images: Sequence[Image],
    outcomes: dict[str, list[CheckOutcome]],
    identity: IdentityConfig | None,
    faces: FaceEmbed | None,
) -> int:
    """Append `other_person` to the outcomes of measured pictures with a face; record every match."""
    if identity is None or faces is None:
        return 0
    readable = [image for image in images if image.id in outcomes]
    results = identity_outcomes(faces(readable), identity)
    for image_id, (outcome, _match) in results.items():
        outcomes[image_id].append(outcome)
    record_identity(session, readable, {i: match for i, (_o, match) in results.items()}, identity)
    return len(results)


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
