"""OneTrainer: image folders with .txt captions (and optional -masklabel.png loss masks) plus concepts.json.

Buckets: mgds' `AspectBucketing` (`MgdsAspectBucketing`): nine aspect ratios from 1:1 to 1:4 and their
transposes at the resolution's pixel count, each side rounded to the model's quantisation. Each concept pins
that resolution (`image.enable_resolution_override`), so the set does not depend on the resolution of the
training config, and every exported image is one of the set: mgds scales it by 1 and crops nothing.

concepts.json holds only keys OneTrainer's ConceptConfig knows (modules/util/config/ConceptConfig.py); it
drops any other key without a word. The --out folder copy names its absolute path (the stored version keeps
it relative): OneTrainer opens a concept's path from the folder it runs in (its checkout). Masks come from
face boxes when spec.include_masks is set; images without faces get no mask, which OneTrainer reads as "the
whole image".
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from loraforge.captioning.policy import trigger_phrase
from loraforge.exporters.base import ExportItem, ExportSpec
from loraforge.exporters.registry import register_exporter
from loraforge.exporters.writer import ExportWriter
from loraforge.imaging.buckets import BucketSet, Placement, fixed_point_set

CONFIG_NAME = "concepts.json"
IMAGE_DIR = "images"
REG_DIR = "reg"
CONCEPT_VERSION = 2
"""ConceptConfig's config_version: written as `__version`, as OneTrainer's own to_dict does, so no
migration touches the concept on load."""

QUANTIZATION: dict[str, int] = {"sd15": 8, "sdxl": 64, "flux": 64}
"""aspect_bucketing_quantization per model, as OneTrainer's data loaders pass it to mgds:
modules/dataLoader/StableDiffusionBaseDataLoader.py (8), StableDiffusionXLBaseDataLoader.py (64),
FluxBaseDataLoader.py (64)."""

ASPECTS: tuple[tuple[float, float], ...] = tuple(
    (1.0, w) for w in (1.0, 1.25, 1.5, 1.75, 2.0, 2.5, 3.0, 3.5, 4.0)
)
"""mgds AspectBucketing.all_possible_input_aspects, as (height, width)."""


@dataclass(frozen=True)
class MgdsAspectBucketing:
    """OneTrainer's bucketing (Nerogar/mgds, src/mgds/pipelineModules/AspectBucketing.py, AspectBucketing:
    __create_automatic_buckets builds the set, get_item places an image)."""

    resolution: int
    quantization: int
    name: str = "OneTrainer (mgds AspectBucketing)"
    resolutions: tuple[tuple[int, int], ...] = field(init=False, repr=False)
    """(height, width) pairs in the order mgds holds them: it takes the first on ties."""

    def __post_init__(self) -> None:
        target, q = self.resolution, self.quantization
        sizes = [(h / math.sqrt(h * w) * target, w / math.sqrt(h * w) * target) for h, w in ASPECTS]
        sizes += [(w, h) for h, w in sizes]
        # Python's round (half to even), as mgds' __quantize_resolution; list(set(...)) gives mgds' order.
        quantized = [(round(h / q) * q, round(w / q) * q) for h, w in sizes]
        object.__setattr__(self, "resolutions", tuple(list(set(quantized))))

    def place(self, width: int, height: int) -> Placement:
        """get_item: the bucket of the closest height/width ratio; the image is scaled so that it covers it,
        then cropped to it."""
        aspect = height / width
        errors = [abs(h / w - aspect) for h, w in self.resolutions]
        bucket_h, bucket_w = self.resolutions[errors.index(min(errors))]
        if aspect > bucket_h / bucket_w:
            resized = (bucket_w, round(height * (bucket_w / width)))
        else:
            resized = (round(width * (bucket_h / height)), bucket_h)
        return Placement((bucket_w, bucket_h), resized)

    def buckets(self) -> BucketSet:
        return fixed_point_set(self.name, ((w, h) for h, w in self.resolutions), self)


@register_exporter("onetrainer")
class OneTrainerExporter:
    name = "onetrainer"
    default_repeats = 1

    def bucket_rule(self, spec: ExportSpec) -> MgdsAspectBucketing:
        assert spec.resolution
        return MgdsAspectBucketing(spec.resolution, QUANTIZATION[spec.target_model])

    def write(self, items: Sequence[ExportItem], spec: ExportSpec, out: ExportWriter) -> None:
        written = out.write_images(items, IMAGE_DIR, masks=spec.include_masks)
        if spec.include_masks and not any(image.item.faces for image in written):
            out.warn("onetrainer: include_masks is set but no image has face boxes; no masks written")
        if spec.reg_items:
            out.write_images(spec.reg_items, REG_DIR)
        for name, text in self.configs(spec).items():
            out.write_text(name, text)

    def configs(self, spec: ExportSpec) -> dict[str, str]:
        concept_name = trigger_phrase(spec.trigger_word, spec.class_word) or spec.class_word or spec.name
        repeats = float(spec.repeats_or(self.default_repeats))
        concepts = [self._concept(spec, concept_name, IMAGE_DIR, repeats)]
        if spec.reg_items:
            reg_name = f"{spec.class_word or 'regularisation'} (reg)"
            concepts.append(self._concept(spec, reg_name, REG_DIR, float(spec.reg_repeats), is_reg=True))
        return {CONFIG_NAME: json.dumps(concepts, indent=2, ensure_ascii=False) + "\n"}

    def _concept(
        self, spec: ExportSpec, name: str, folder: str, balancing: float, *, is_reg: bool = False
    ) -> dict[str, Any]:
        return {
            "__version": CONCEPT_VERSION,
            "name": name,
            "path": spec.path_in_dataset(folder),
            "seed": 0,
            "enabled": True,
            "type": "STANDARD",
            "include_subdirectories": False,
            "image_variations": 1,
            "text_variations": 1,
            "balancing": balancing,
            "balancing_strategy": "REPEATS",
            "loss_weight": 1.0,
            "image": {
                # Crop jitter moves the crop window; with the image already at its bucket there is nothing to
                # move, but OneTrainer's default is on, so say it.
                "enable_crop_jitter": False,
                "enable_random_flip": spec.flip_aug,
                "enable_fixed_flip": False,
                # The resolution the buckets were rendered for, whatever the training config says.
                "enable_resolution_override": True,
                "resolution_override": str(spec.resolution),
            },
            "text": {
                "prompt_source": "sample",
                "prompt_path": "",
                "enable_tag_shuffling": spec.shuffle_caption and not is_reg,
                "tag_delimiter": ",",
                "keep_tags_count": 0 if is_reg else max(1, spec.effective_keep_tokens),
                "tag_dropout_enable": spec.caption_dropout_rate > 0 and not is_reg,
                "tag_dropout_probability": 0.0 if is_reg else spec.caption_dropout_rate,
            },
        }
