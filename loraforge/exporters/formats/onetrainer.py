"""OneTrainer: image folders with .txt captions (and optional -masklabel.png loss masks) plus concepts.json.

Masks come from face boxes when spec.include_masks is set; images without faces get no mask, which
OneTrainer reads as "train on the whole image".
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from loraforge.exporters.base import ExportItem, ExportSpec
from loraforge.exporters.registry import register_exporter
from loraforge.exporters.writer import ExportWriter

CONFIG_NAME = "concepts.json"
IMAGE_DIR = "images"
REG_DIR = "reg"


@register_exporter("onetrainer")
class OneTrainerExporter:
    name = "onetrainer"
    default_repeats = 1

    def write(self, items: Sequence[ExportItem], spec: ExportSpec, out: ExportWriter) -> None:
        written = out.write_images(items, IMAGE_DIR, masks=spec.include_masks)
        if spec.include_masks and not any(image.item.faces for image in written):
            out.warn("onetrainer: include_masks is set but no image has face boxes; no masks written")
        concept_name = " ".join(w for w in (spec.trigger_word, spec.class_word) if w) or spec.name
        repeats = float(spec.repeats_or(self.default_repeats))
        concepts = [self._concept(spec, concept_name, IMAGE_DIR, repeats)]
        if spec.reg_items:
            out.write_images(spec.reg_items, REG_DIR)
            reg_name = f"{spec.class_word or 'regularisation'} (reg)"
            concepts.append(self._concept(spec, reg_name, REG_DIR, float(spec.reg_repeats), is_reg=True))
        out.write_text(CONFIG_NAME, json.dumps(concepts, indent=2, ensure_ascii=False) + "\n")

    def _concept(
        self, spec: ExportSpec, name: str, folder: str, balancing: float, *, is_reg: bool = False
    ) -> dict[str, Any]:
        return {
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
                "enable_random_flip": spec.flip_aug,
                "enable_fixed_flip": False,
                "enable_crop_jitter": False,
                "enable_random_crop": False,
                "enable_resolution_override": False,
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
