"""Hugging Face ImageFolder (diffusers training scripts, the Hub): train/ + metadata.jsonl.

Buckets: none. The `imagefolder` loader hands every picture over at its own size (`AnySize`), so the bucket
stage renders the model's generic grid. What a training script then does is its own affair: diffusers'
train_text_to_image*.py resize the short side to --resolution and crop a square, whatever the size.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from loraforge.exporters.base import ExportItem, ExportSpec
from loraforge.exporters.buckets import AnySize
from loraforge.exporters.registry import register_exporter
from loraforge.exporters.writer import ExportWriter
from loraforge.imaging.buckets import bucket_set

SPLIT_DIR = "train"


@register_exporter("hf")
class HuggingFaceExporter:
    name = "hf"
    default_repeats = 1

    def bucket_rule(self, spec: ExportSpec) -> AnySize:
        generic = bucket_set(
            spec.target_model,
            resolution=spec.resolution,
            min_reso=spec.min_bucket_reso,
            max_reso=spec.max_bucket_reso,
            step=spec.bucket_step,
        )
        return AnySize(generic, name="HF ImageFolder (any size)")

    def configs(self, spec: ExportSpec) -> dict[str, str]:
        return {}  # metadata.jsonl names the pictures relative to itself, wherever the folder lies

    def write(self, items: Sequence[ExportItem], spec: ExportSpec, out: ExportWriter) -> None:
        if spec.reg_items:
            out.warn("hf: ImageFolder has no regularisation split; reg_items left out")
        # No .txt files: the captions live in metadata.jsonl, and stray files would confuse the loader.
        written = out.write_images(items, SPLIT_DIR, captions=False)
        lines = []
        for image in written:
            row = {
                "file_name": image.name.removeprefix(f"{SPLIT_DIR}/"),
                "text": image.caption,
                "prompt": image.caption,
            }
            lines.append(json.dumps(row, ensure_ascii=False, sort_keys=True))
        out.write_text(f"{SPLIT_DIR}/metadata.jsonl", "".join(f"{line}\n" for line in lines))
