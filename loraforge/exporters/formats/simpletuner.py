"""SimpleTuner: image folders with .txt captions plus multidatabackend.json (image and text_embeds backends).

SimpleTuner's repeats count extra passes (0 = each image once), so spec.repeats - 1 is written.
Options (spec.options): `crop` (default False: images arrive already cut to their buckets), `crop_style`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from loraforge.exporters.base import ExportItem, ExportSpec
from loraforge.exporters.registry import register_exporter
from loraforge.exporters.writer import ExportWriter

CONFIG_NAME = "multidatabackend.json"
IMAGE_DIR = "images"
REG_DIR = "reg"


@register_exporter("simpletuner")
class SimpleTunerExporter:
    name = "simpletuner"
    default_repeats = 1

    def write(self, items: Sequence[ExportItem], spec: ExportSpec, out: ExportWriter) -> None:
        out.write_images(items, IMAGE_DIR)
        backends = [self._image_backend(spec, spec.name, IMAGE_DIR, spec.repeats_or(self.default_repeats))]
        if spec.reg_items:
            out.write_images(spec.reg_items, REG_DIR)
            reg = self._image_backend(spec, f"{spec.name}-reg", REG_DIR, spec.reg_repeats)
            reg["is_regularisation_data"] = True
            backends.append(reg)
        backends.append(
            {
                "id": "text-embeds",
                "dataset_type": "text_embeds",
                "default": True,
                "type": "local",
                "cache_dir": spec.path_in_dataset(f"cache/text/{spec.target_model}"),
            }
        )
        out.write_text(CONFIG_NAME, json.dumps(backends, indent=2, ensure_ascii=False) + "\n")

    def _image_backend(self, spec: ExportSpec, backend_id: str, folder: str, repeats: int) -> dict[str, Any]:
        backend: dict[str, Any] = {
            "id": backend_id,
            "type": "local",
            "dataset_type": "image",
            "instance_data_dir": spec.path_in_dataset(folder),
            "caption_strategy": "textfile",
            "resolution": spec.resolution,
            "resolution_type": "pixel_area",
            "minimum_image_size": spec.min_bucket_reso,
            "crop": bool(spec.options.get("crop", False)),
            "crop_style": spec.options.get("crop_style", "center"),
            "crop_aspect": "preserve",
            "repeats": repeats - 1,
            "cache_dir_vae": spec.path_in_dataset(f"cache/vae/{spec.target_model}/{backend_id}"),
        }
        if spec.trigger_word:
            backend["instance_prompt"] = spec.trigger_word
        return backend
