"""kohya sd-scripts / kohya_ss: `img/<repeats>_<trigger> <class>/` folders plus a dataset_config.toml.

Options (spec.options): none yet; paths in the TOML are relative to the export root unless
spec.dataset_root says where the trainer will find it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import tomli_w

from loraforge.exporters.base import ExportItem, ExportSpec
from loraforge.exporters.registry import register_exporter
from loraforge.exporters.writer import ExportWriter

CONFIG_NAME = "dataset_config.toml"
_HEADER = (
    "# Written by LoRA Forge for sd-scripts (--dataset_config).\n"
    "# image_dir paths are relative to the folder you run training from unless made absolute at export.\n"
)


def instance_folder(repeats: int, trigger: str | None, class_word: str | None) -> str:
    """kohya's folder name: the repeat count before the first "_", then the instance and class tokens."""
    tokens = " ".join(word for word in (trigger, class_word) if word) or "images"
    return f"{repeats}_{tokens}"


@register_exporter("kohya")
class KohyaExporter:
    name = "kohya"
    default_repeats = 10

    def write(self, items: Sequence[ExportItem], spec: ExportSpec, out: ExportWriter) -> None:
        repeats = spec.repeats_or(self.default_repeats)
        train_dir = f"img/{instance_folder(repeats, spec.trigger_word, spec.class_word)}"
        out.write_images(items, train_dir)
        subsets: list[dict[str, Any]] = [self._subset(spec, train_dir, repeats, is_reg=False)]
        if spec.reg_items:
            reg_dir = f"reg/{instance_folder(spec.reg_repeats, None, spec.class_word)}"
            out.write_images(spec.reg_items, reg_dir)
            subsets.append(self._subset(spec, reg_dir, spec.reg_repeats, is_reg=True))
        out.write_text(CONFIG_NAME, _HEADER + tomli_w.dumps(self._config(spec, subsets)))

    def _subset(self, spec: ExportSpec, folder: str, repeats: int, *, is_reg: bool) -> dict[str, Any]:
        tokens = spec.class_word if is_reg else " ".join(w for w in (spec.trigger_word, spec.class_word) if w)
        subset: dict[str, Any] = {
            "image_dir": spec.path_in_dataset(folder),
            "num_repeats": repeats,
            "caption_extension": ".txt",
            "is_reg": is_reg,
            "keep_tokens": 0 if is_reg else spec.effective_keep_tokens,
            "shuffle_caption": spec.shuffle_caption,
            "flip_aug": spec.flip_aug,
            "caption_dropout_rate": 0.0 if is_reg else spec.caption_dropout_rate,
        }
        if tokens:
            subset["class_tokens"] = tokens
        return subset

    def _config(self, spec: ExportSpec, subsets: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "general": {
                "caption_extension": ".txt",
                "shuffle_caption": spec.shuffle_caption,
                "keep_tokens": spec.effective_keep_tokens,
            },
            "datasets": [
                {
                    "resolution": spec.resolution,
                    "batch_size": spec.batch_size,
                    "enable_bucket": True,
                    "min_bucket_reso": spec.min_bucket_reso,
                    "max_bucket_reso": spec.max_bucket_reso,
                    "bucket_reso_steps": spec.bucket_step,
                    "bucket_no_upscale": spec.bucket_no_upscale,
                    "subsets": subsets,
                }
            ],
        }
