"""Curation: measure each picture (worker side); check, group and decide over the whole dataset (driver side).

Worker side (`CurateStage`): fetch the original bytes, `loraforge.curation.measure` them once, return the
features as JSON. Driver side: `select_curate_work` (pictures lacking features of the current version),
`record_features` (one image_metadata "features" row per picture), then `curate_dataset`, which runs the
checks, groups duplicates and writes every status in one session. Manual decisions (`review_images`,
images.status_manual) are never overturned; their issues and scores are still refreshed. The driver side
lives in `curate_records` (select, record, embeddings), `curate_decide` (checks, groups, statuses) and
`review` (decisions by hand); this module re-exports it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from loraforge.curation import measure
from loraforge.curation.features import FEATURES_VERSION
from loraforge.errors import InvalidInput, NotFound
from loraforge.stages.base import Item, Resources, Result, error_result
from loraforge.stages.curate_decide import (
    LARGE_DATASET,
    UNREADABLE,
    CurateConfig,
    CurateSummary,
    check_thresholds,
    curate_dataset,
    curate_options,
    decide_curation,
    summary_rows,
)
from loraforge.stages.curate_records import (
    EMBED_CHUNK,
    EMBEDDING_KEY,
    FEATURES_KEY,
    ISSUES_KEY,
    SCORES_KEY,
    Embed,
    MeasureRecord,
    clip_embed,
    clip_embedder,
    record_features,
    select_curate_work,
)
from loraforge.stages.review import MANUAL_REASONS, ReviewChange, resolve_images, review_images
from loraforge.storage import ObjectStore, StoreConfig, open_store

log = logging.getLogger(__name__)

__all__ = [
    "EMBED_CHUNK",
    "EMBEDDING_KEY",
    "FEATURES_KEY",
    "ISSUES_KEY",
    "LARGE_DATASET",
    "MANUAL_REASONS",
    "SCORES_KEY",
    "UNREADABLE",
    "CurateConfig",
    "CurateStage",
    "CurateSummary",
    "Embed",
    "MeasureRecord",
    "ReviewChange",
    "check_thresholds",
    "clip_embed",
    "clip_embedder",
    "curate_dataset",
    "curate_options",
    "decide_curation",
    "record_features",
    "resolve_images",
    "review_images",
    "select_curate_work",
    "summary_rows",
]


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
