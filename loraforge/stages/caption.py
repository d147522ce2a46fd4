"""Caption: fetch, decode and caption pictures with one captioner loaded per worker, then apply the policy.

Worker side (`CaptionStage`): `prepare_batch` fetches each picture from the store and decodes it at the
captioner's input size (CPU work, before the model actors); `setup()` loads the captioner once per actor;
`process_batch` captions a batch and applies the caption policy (trigger word, prefix/suffix, clean-up,
token-length warnings). Driver side lives in `loraforge.stages.caption_records` (select, record, edit)
and `loraforge.stages.caption_setup` (request, captioner choice, building the stage), re-exported here.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from loraforge.captioning import CaptionPolicy
from loraforge.errors import InvalidInput, ModelError, NotFound
from loraforge.imaging.decode import load_image
from loraforge.models.captioners import Captioner, CaptionOutcome, caption_images
from loraforge.stages.base import Item, Resources, Result, error_result, one_line
from loraforge.stages.caption_records import (
    MANUAL_VARIANT,
    WARNINGS_KEY,
    WORK_STATUSES,
    CaptionChange,
    CaptionRecord,
    caption_history,
    find_image,
    keep_missing,
    missing_variant,
    record_captions,
    replace_in_captions,
    select_caption_work,
    set_caption,
)
from loraforge.stages.caption_setup import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_INPUT_SIDE,
    FALLBACK_BATCH_SIZE,
    LOCAL_MODEL_CANDIDATES,
    TEMPLATE_FALLBACK_REASON,
    CaptionRequest,
    Resize,
    build_caption_stage,
    caption_request,
    check_captioner,
    default_captioner,
    model_input_side,
)
from loraforge.storage import ObjectStore, StoreConfig, open_store

log = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "DEFAULT_INPUT_SIDE",
    "FALLBACK_BATCH_SIZE",
    "LOCAL_MODEL_CANDIDATES",
    "MANUAL_VARIANT",
    "TEMPLATE_FALLBACK_REASON",
    "WARNINGS_KEY",
    "WORK_STATUSES",
    "CaptionChange",
    "CaptionRecord",
    "CaptionRequest",
    "CaptionStage",
    "Resize",
    "build_caption_stage",
    "caption_history",
    "caption_request",
    "check_captioner",
    "default_captioner",
    "find_image",
    "keep_missing",
    "missing_variant",
    "model_input_side",
    "record_captions",
    "replace_in_captions",
    "select_caption_work",
    "set_caption",
]


@dataclass
class CaptionStage:
    """Worker side of captioning. Items carry image_id, filename and object_key."""

    store_config: StoreConfig
    captioner: Captioner
    policy: CaptionPolicy
    max_pixels: int
    resize: Resize | None = None
    """None: the captioner never looks at pixels (template), so nothing is fetched or decoded."""
    batch_size: int = FALLBACK_BATCH_SIZE
    num_gpus: float = 0.0
    cpu_threads: int | None = None
    """torch threads per actor on CPU, so a pool shares the machine's cores instead of fighting over them."""
    stateful: bool = True

    name: str = "caption"
    version: int = 1
    resources: Resources = field(init=False, default_factory=Resources)

    def __post_init__(self) -> None:
        self.resources = Resources(num_cpus=1, num_gpus=self.num_gpus)
        self._store: ObjectStore | None = None
        self._loaded = False

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_store": None, "_loaded": False}

    def setup_prepare(self) -> None:
        if self._store is None and self.resize is not None:
            self._store = open_store(self.store_config)

    def setup(self) -> None:
        self.setup_prepare()
        if self._loaded:
            return
        if self.cpu_threads and self.num_gpus == 0 and self.resize is not None:
            import torch

            torch.set_num_threads(self.cpu_threads)
        self.captioner.load()
        self._loaded = True

    def prepare_batch(self, items: list[Item]) -> list[Item]:
        """Fetch and decode each picture at the captioner's input size; a bad picture becomes an error row."""
        self.setup_prepare()
        return [self._prepare(item) for item in items]

    def process_batch(self, items: list[Item]) -> list[Result]:
        self.setup()
        prepared = [item if "image" in item or item.get("error") else self._prepare(item) for item in items]
        todo = [index for index, item in enumerate(prepared) if not item.get("error")]
        images = [prepared[index]["image"] for index in todo]
        try:
            outcomes = caption_images(self.captioner, images)
        except ModelError as exc:  # concerns every picture of the batch, e.g. the endpoint went away
            outcomes = [CaptionOutcome(error=one_line(str(exc)))] * len(images)
        results = [_without_image(item) for item in prepared]
        for index, outcome in zip(todo, outcomes, strict=True):
            results[index] = self._finish(results[index], outcome)
        return results

    def _prepare(self, item: Item) -> Item:
        if item.get("error") or "image" in item:
            return item
        if self.resize is None:
            from PIL import Image

            return {**item, "image": Image.new("RGB", (1, 1))}
        assert self._store is not None
        try:
            data = self._store.get(str(item["object_key"]))
            side = self.resize.side
            image = load_image(data, max_pixels=self.max_pixels, draft_size=(side, side))
            size = self.resize.target(*image.size)
            if size != image.size:
                from PIL import Image

                image = image.resize(size, Image.Resampling.BICUBIC, reducing_gap=2.0)
            return {**item, "image": image}
        except (InvalidInput, NotFound) as exc:
            return error_result(item, str(exc))
        except Exception as exc:  # noqa: BLE001 - one bad picture must never fail the batch
            log.exception("caption: cannot read %s", item.get("filename"))
            return error_result(item, f"cannot read the picture: {exc!r}")

    def _finish(self, item: Item, outcome: CaptionOutcome) -> Result:
        if outcome.error is not None:
            return error_result(item, outcome.error)
        applied = self.policy.apply(outcome.text, tags=[str(tag) for tag in item.get("tags") or ()])
        if not applied.text:
            return error_result(item, "the captioner returned no usable text")
        return {
            **item,
            "text": applied.text,
            "raw": outcome.text,
            "warnings": list(applied.warnings),
            "error": None,
        }


def _without_image(item: Item) -> Item:
    return {key: value for key, value in item.items() if key != "image"}
