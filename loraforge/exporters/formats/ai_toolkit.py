"""ai-toolkit (ostris): a folder of images + .txt captions and a YAML job with its dataset entries.

Buckets: ai-toolkit's `get_bucket_for_image_size` (`AiToolkitBuckets`): a picture keeps its pixel count up
to resolution², its sides on the model's divisibility. A size on that grid and within resolution² is kept as
it is, so the bucket stage renders kohya's generator on that grid (every size of it qualifies).

The job lists one resolution, the export's: ai-toolkit splits a dataset into one copy per listed resolution
(toolkit/config_modules.py preprocess_dataset_raw_config), and each further one trains a downscaled copy.
The --out folder copy names its absolute path (the stored version keeps it relative): ai-toolkit runs from
its checkout and opens a relative folder_path there. Options (spec.options): `resolutions` (list of ints,
default [spec.resolution]), `steps` (default 1000), `lora_rank` (default 16), `model_path`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import yaml

from loraforge.captioning.policy import trigger_phrase
from loraforge.exporters.base import ExportItem, ExportSpec
from loraforge.exporters.registry import register_exporter
from loraforge.exporters.writer import ExportWriter
from loraforge.imaging.buckets import BucketSet, Placement, fixed_point_set, kohya_buckets

CONFIG_NAME = "config.yaml"
IMAGE_DIR = "dataset"
REG_DIR = "reg"
_MODEL_PATHS = {
    "flux": "black-forest-labs/FLUX.1-dev",
    "sdxl": "stabilityai/stable-diffusion-xl-base-1.0",
    "sd15": "stable-diffusion-v1-5/stable-diffusion-v1-5",
}
DIVISIBILITY = {"sd15": 16, "sdxl": 16, "flux": 32}
"""toolkit/stable_diffusion_model.py StableDiffusion.get_bucket_divisibility, which AiToolkitDataset writes
into bucket_tolerance: 2^(VAE blocks - 1) = 8, doubled for Flux's packing, doubled again."""


@dataclass(frozen=True)
class AiToolkitBuckets:
    """ai-toolkit's bucketing (ostris/ai-toolkit, toolkit/buckets.py, get_bucket_for_image_size; placed by
    toolkit/dataloader_mixins.py BucketsMixin.setup_buckets: scaled to cover the bucket, centre-cropped)."""

    resolution: int
    divisibility: int
    min_reso: int
    max_reso: int
    """Side limits of the sizes the bucket stage offers (ai-toolkit has none of its own)."""
    name: str = "ai-toolkit (get_bucket_for_image_size)"

    def bucket_of(self, width: int, height: int) -> tuple[int, int]:
        """get_bucket_for_image_size: never more pixels than resolution² nor than the picture has; of the
        four grid roundings of the area-kept size, the one closest to that area."""
        total, max_pixels, step = width * height, self.resolution * self.resolution, self.divisibility
        target = min(total, max_pixels)
        scaler = (target / total) ** 0.5
        w_raw, h_raw = (width * scaler) / step, (height * scaler) / step
        candidates = [
            (math.floor(w_raw) * step, math.floor(h_raw) * step),
            (math.floor(w_raw) * step, math.ceil(h_raw) * step),
            (math.ceil(w_raw) * step, math.floor(h_raw) * step),
            (math.ceil(w_raw) * step, math.ceil(h_raw) * step),
        ]
        capped = [(w, h) for w, h in candidates if w > 0 and h > 0 and w * h <= max_pixels]
        if not capped:
            capped = [(max(step, math.floor(w_raw) * step), max(step, math.floor(h_raw) * step))]
        return min(capped, key=lambda wh: abs(wh[0] * wh[1] - target))

    def place(self, width: int, height: int) -> Placement:
        return _cover(width, height, self.bucket_of(width, height))

    def buckets(self) -> BucketSet:
        grid = kohya_buckets(self.resolution, self.min_reso, self.max_reso, self.divisibility)
        return fixed_point_set(self.name, ((b.width, b.height) for b in grid), self)


def _cover(width: int, height: int, bucket: tuple[int, int]) -> Placement:
    """setup_buckets: scale by the larger of the two ratios, sides rounded up, then crop the bucket."""
    scale = max(bucket[0] / width, bucket[1] / height)
    return Placement(bucket, (int(math.ceil(width * scale)), int(math.ceil(height * scale))))


@register_exporter("ai-toolkit")
class AiToolkitExporter:
    name = "ai-toolkit"
    default_repeats = 1

    def bucket_rule(self, spec: ExportSpec) -> AiToolkitBuckets:
        assert spec.resolution and spec.min_bucket_reso and spec.max_bucket_reso
        step = DIVISIBILITY[spec.target_model]
        low, high = (max(step, side - side % step) for side in (spec.min_bucket_reso, spec.max_bucket_reso))
        return AiToolkitBuckets(spec.resolution, step, low, high)

    def write(self, items: Sequence[ExportItem], spec: ExportSpec, out: ExportWriter) -> None:
        out.write_images(items, IMAGE_DIR)
        if spec.reg_items:
            out.write_images(spec.reg_items, REG_DIR)
        for name, text in self.configs(spec).items():
            out.write_text(name, text)

    def configs(self, spec: ExportSpec) -> dict[str, str]:
        datasets = [self._dataset(spec, IMAGE_DIR, spec.repeats_or(self.default_repeats), is_reg=False)]
        if spec.reg_items:
            datasets.append(self._dataset(spec, REG_DIR, spec.reg_repeats, is_reg=True))
        text = yaml.safe_dump(self._job(spec, datasets), sort_keys=False, allow_unicode=True)
        return {CONFIG_NAME: _header(spec) + text}

    def _dataset(self, spec: ExportSpec, folder: str, repeats: int, *, is_reg: bool) -> dict[str, Any]:
        return {
            "folder_path": spec.path_in_dataset(folder),
            "caption_ext": spec.caption_extension.removeprefix("."),
            "default_caption": (spec.class_word or "") if is_reg else _default_caption(spec),
            "caption_dropout_rate": 0.0 if is_reg else spec.caption_dropout_rate,
            "shuffle_tokens": spec.shuffle_caption,
            "keep_tokens": spec.effective_keep_tokens,
            "cache_latents_to_disk": True,
            "resolution": list(spec.options.get("resolutions") or [spec.resolution]),
            "buckets": True,
            "num_repeats": repeats,
            "is_reg": is_reg,
        }

    def _job(self, spec: ExportSpec, datasets: list[dict[str, Any]]) -> dict[str, Any]:
        rank = int(spec.options.get("lora_rank", 16))
        process: dict[str, Any] = {
            "type": "sd_trainer",
            "training_folder": "output",
            "network": {"type": "lora", "linear": rank, "linear_alpha": rank},
            "datasets": datasets,
            "train": {"batch_size": spec.batch_size, "steps": int(spec.options.get("steps", 1000))},
            "model": {
                "name_or_path": spec.options.get("model_path", _MODEL_PATHS[spec.target_model]),
                "is_flux": spec.target_model == "flux",
                "is_xl": spec.target_model == "sdxl",
            },
        }
        if spec.trigger_word:
            process["trigger_word"] = spec.trigger_word
        return {"job": "extension", "config": {"name": spec.name, "process": [process]}}


def _header(spec: ExportSpec) -> str:
    if spec.dataset_root is None:
        lines = [
            "Written by LoRA Forge for ai-toolkit. folder_path is relative, and ai-toolkit opens it from the",
            "folder it runs in (its checkout): set it to this folder's absolute path first, or export into a",
            "folder without --relative-paths. Then, from the ai-toolkit checkout:",
            "  python run.py /absolute/path/to/config.yaml",
        ]
    else:
        config = f"{spec.dataset_root.rstrip('/')}/{CONFIG_NAME}"
        lines = [
            "Written by LoRA Forge for ai-toolkit. folder_path is absolute; from the ai-toolkit checkout:",
            f'  python run.py "{config}"',
        ]
    return "".join(f"# {line}\n" for line in lines)


def _default_caption(spec: ExportSpec) -> str:
    return trigger_phrase(spec.trigger_word, spec.class_word) or spec.class_word or ""
