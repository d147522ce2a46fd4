"""ai-toolkit (ostris): a folder of images + .txt captions and a YAML job with its dataset entries.

Options (spec.options): `resolutions` (list of ints; default 512/768/1024 up to spec.resolution for Flux,
else [spec.resolution]), `steps` (default 1000), `lora_rank` (default 16), `model_path`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import yaml

from loraforge.exporters.base import ExportItem, ExportSpec
from loraforge.exporters.registry import register_exporter
from loraforge.exporters.writer import ExportWriter

CONFIG_NAME = "config.yaml"
IMAGE_DIR = "dataset"
REG_DIR = "reg"
_MODEL_PATHS = {
    "flux": "black-forest-labs/FLUX.1-dev",
    "sdxl": "stabilityai/stable-diffusion-xl-base-1.0",
    "sd15": "stable-diffusion-v1-5/stable-diffusion-v1-5",
}


def default_resolutions(spec: ExportSpec) -> list[int]:
    resolution = spec.resolution or 1024
    if spec.target_model == "flux":
        return [r for r in (512, 768, 1024) if r <= resolution] or [resolution]
    return [resolution]


@register_exporter("ai-toolkit")
class AiToolkitExporter:
    name = "ai-toolkit"
    default_repeats = 1

    def write(self, items: Sequence[ExportItem], spec: ExportSpec, out: ExportWriter) -> None:
        out.write_images(items, IMAGE_DIR)
        datasets = [self._dataset(spec, IMAGE_DIR, spec.repeats_or(self.default_repeats), is_reg=False)]
        if spec.reg_items:
            out.write_images(spec.reg_items, REG_DIR)
            datasets.append(self._dataset(spec, REG_DIR, spec.reg_repeats, is_reg=True))
        text = yaml.safe_dump(self._job(spec, datasets), sort_keys=False, allow_unicode=True)
        out.write_text(CONFIG_NAME, "# Written by LoRA Forge: run with `python run.py config.yaml`.\n" + text)

    def _dataset(self, spec: ExportSpec, folder: str, repeats: int, *, is_reg: bool) -> dict[str, Any]:
        return {
            "folder_path": spec.path_in_dataset(folder),
            "caption_ext": "txt",
            "default_caption": (spec.class_word or "") if is_reg else _default_caption(spec),
            "caption_dropout_rate": 0.0 if is_reg else spec.caption_dropout_rate,
            "shuffle_tokens": spec.shuffle_caption,
            "keep_tokens": spec.effective_keep_tokens,
            "cache_latents_to_disk": True,
            "resolution": list(spec.options.get("resolutions") or default_resolutions(spec)),
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


def _default_caption(spec: ExportSpec) -> str:
    return " ".join(word for word in (spec.trigger_word, spec.class_word) if word)
