"""SimpleTuner: image folders with .txt captions, multidatabackend.json (image and text_embeds backends) and
a config.json holding the settings its bucketing reads.

Buckets: SimpleTuner's pixel-area rule (`SimpleTunerPixelArea`): the aspect ratio rounded to
`aspect_bucket_rounding` decimals, the sides of the resolution's pixel area rounded to
`aspect_bucket_alignment`. The alignment and rounding are global arguments, not backend keys, so config.json
sets them beside `resolution_type: pixel_area` and `resolution`; every exported image is a size that rule
keeps (crop off, so an image it kept is only resized to its own size).

SimpleTuner's repeats count extra passes (0 = each image once), so spec.repeats - 1 is written. The --out
folder copy names its absolute path (the stored version keeps it relative): SimpleTuner opens paths from
the folder it runs in. Launch with
`CONFIG_BACKEND=json CONFIG_PATH=<export>/config.json simpletuner train`, after adding the model and
training settings you want to config.json.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from loraforge.exporters.base import ExportItem, ExportSpec
from loraforge.exporters.registry import register_exporter
from loraforge.exporters.writer import ExportWriter
from loraforge.imaging.buckets import BucketSet, Placement, fixed_point_set

CONFIG_NAME = "config.json"
BACKENDS_NAME = "multidatabackend.json"
IMAGE_DIR = "images"
REG_DIR = "reg"
MODEL_FAMILIES = {"sd15": "sd1x", "sdxl": "sdxl", "flux": "flux"}
ALIGNMENT = 64
"""aspect_bucket_alignment: SimpleTuner's default (simpletuner_sdk/server/services/field_registry/sections/
advanced.py), and the value helpers/models/flux/model.py forces for Flux."""
ROUNDING = 2
"""aspect_bucket_rounding: MultiaspectImage.calculate_image_aspect_ratio's default."""
_AREA_MAP = {0.25: 512**2, 0.5: 768**2, 1.0: 1024**2, 2.0: 1536**2, 4.0: 2048**2}
"""TrainingSample._set_resolution: megapixel values near these stand for these pixel areas."""


@dataclass(frozen=True)
class SimpleTunerPixelArea:
    """SimpleTuner's bucketing for `resolution_type: pixel_area` without cropping (bghira/SimpleTuner,
    simpletuner/helpers/multiaspect/image.py, MultiaspectImage.calculate_new_size_by_pixel_area, and
    simpletuner/helpers/image_manipulation/training_sample.py, TrainingSample.calculate_target_size)."""

    resolution: int
    alignment: int = ALIGNMENT
    rounding: int = ROUNDING
    name: str = "SimpleTuner (pixel_area)"

    @property
    def megapixels(self) -> float:
        # data_backend/factory.py _handle_resolution_conversion: a pixel_area edge becomes edge² / 1000².
        return (self.resolution * self.resolution) / (1000**2)

    @property
    def pixel_resolution(self) -> int:
        """TrainingSample._set_resolution for area: the square side, after the megapixel remapping."""
        area = next(
            (value for key, value in _AREA_MAP.items() if abs(self.megapixels - key) < 0.05),
            self.megapixels * 1e6,
        )
        return int(self._round(math.sqrt(area)))

    def _round(self, value: float) -> int:
        """MultiaspectImage._round_to_nearest_multiple."""
        return max(round(value / self.alignment) * self.alignment, self.alignment)

    def new_size_by_pixel_area(
        self, aspect_ratio: float, original: tuple[int, int]
    ) -> tuple[tuple[int, int], tuple[int, int]]:
        """calculate_new_size_by_pixel_area: (target, intermediary) for a rounded aspect ratio."""
        edge = self._round(int(math.sqrt(self.megapixels * 1e6)))
        width, height = original
        if aspect_ratio == 1.0 and width == height:
            return (edge, edge), (edge, edge)
        target_w = self._round(edge * math.sqrt(aspect_ratio))
        target_h = self._round(edge / math.sqrt(aspect_ratio))
        raw = width / height
        if target_w < target_h:
            inter_w, inter_h = target_w, int(target_w / raw)
        else:
            inter_w, inter_h = int(target_h * raw), target_h
        if target_w > inter_w or target_h > inter_h:
            if target_w > inter_w:
                w_diff = target_w - inter_w
                h_diff = int(w_diff / raw)
            else:
                h_diff = target_h - inter_h
                w_diff = int(h_diff * raw)
            inter_w, inter_h = inter_w + w_diff, inter_h + h_diff
        return (target_w, target_h), (inter_w, inter_h)

    def place(self, width: int, height: int) -> Placement:
        """calculate_target_size with crop off: resized to the intermediary size, then cropped to the
        target; a target of aspect 1.0 becomes the pixel resolution's square."""
        aspect = round(width / height, self.rounding)
        target, intermediary = self.new_size_by_pixel_area(aspect, (width, height))
        if round(target[0] / target[1], self.rounding) == 1.0:
            side = self.pixel_resolution
            if intermediary[0] < side:  # correct_intermediary_square_size
                intermediary = (side, side)
            target = (side, side)
        return Placement(target, intermediary)

    def buckets(self) -> BucketSet:
        # The target depends on the rounded aspect only: every ratio from 1:4 to 4:1 in rounding steps.
        steps = 10**self.rounding
        candidates = [
            self.new_size_by_pixel_area(k / steps, (k, steps))[0] for k in range(steps // 4, 4 * steps + 1)
        ]
        return fixed_point_set(self.name, candidates, self)


@register_exporter("simpletuner")
class SimpleTunerExporter:
    name = "simpletuner"
    default_repeats = 1

    def bucket_rule(self, spec: ExportSpec) -> SimpleTunerPixelArea:
        assert spec.resolution
        return SimpleTunerPixelArea(spec.resolution)

    def write(self, items: Sequence[ExportItem], spec: ExportSpec, out: ExportWriter) -> None:
        out.write_images(items, IMAGE_DIR)
        if spec.reg_items:
            out.write_images(spec.reg_items, REG_DIR)
        for name, text in self.configs(spec).items():
            out.write_text(name, text)

    def configs(self, spec: ExportSpec) -> dict[str, str]:
        rule = self.bucket_rule(spec)
        backends = [self._image_backend(spec, spec.name, IMAGE_DIR, spec.repeats_or(self.default_repeats))]
        if spec.reg_items:
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
        return {
            BACKENDS_NAME: json.dumps(backends, indent=2, ensure_ascii=False) + "\n",
            CONFIG_NAME: json.dumps(self._config(spec, rule), indent=2, ensure_ascii=False) + "\n",
        }

    def _config(self, spec: ExportSpec, rule: SimpleTunerPixelArea) -> dict[str, Any]:
        """The global arguments the bucketing reads, and what ties the run to this export."""
        return {
            "model_family": MODEL_FAMILIES[spec.target_model],
            "model_type": "lora",
            "data_backend_config": spec.path_in_dataset(BACKENDS_NAME),
            "output_dir": spec.path_in_dataset("output"),
            "resolution": rule.resolution,
            "resolution_type": "pixel_area",
            "aspect_bucket_alignment": rule.alignment,
            "aspect_bucket_rounding": rule.rounding,
            "train_batch_size": spec.batch_size,
        }

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
            "crop": False,
            "repeats": repeats - 1,
            "cache_dir_vae": spec.path_in_dataset(f"cache/vae/{spec.target_model}/{backend_id}"),
        }
        if spec.trigger_word:
            backend["instance_prompt"] = spec.trigger_word
        return backend
