"""Hugging Face ImageFolder (diffusers training scripts, the Hub): train/ + metadata.jsonl."""

from __future__ import annotations

import json
from collections.abc import Sequence

from loraforge.exporters.base import ExportItem, ExportSpec
from loraforge.exporters.registry import register_exporter
from loraforge.exporters.writer import ExportWriter

SPLIT_DIR = "train"


@register_exporter("hf")
class HuggingFaceExporter:
    name = "hf"
    default_repeats = 1

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
