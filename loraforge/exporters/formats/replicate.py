"""Replicate's ostris/flux-dev-lora-trainer (and Civitai, fal): a flat set of jpg/png + same-stem .txt.

Written into a ZipSink this is the `input_images` zip: no parent folder, no other files.
"""

from __future__ import annotations

from collections.abc import Sequence

from loraforge.exporters.base import ExportItem, ExportSpec
from loraforge.exporters.registry import register_exporter
from loraforge.exporters.writer import ExportWriter

UPLOAD_LIMIT_BYTES = 100 * 1024 * 1024
"""Above this the Replicate client's upload is unreliable; pass a URL to the zip instead."""


@register_exporter("replicate")
class ReplicateExporter:
    name = "replicate"
    default_repeats = 1

    def write(self, items: Sequence[ExportItem], spec: ExportSpec, out: ExportWriter) -> None:
        if spec.reg_items:
            out.warn("replicate: the trainer takes no regularisation images; reg_items left out")
        if spec.repeats not in (None, 1):
            out.warn("replicate: the trainer has no repeats setting; repeats ignored")
        out.write_images(items, "")
        if out.bytes_written > UPLOAD_LIMIT_BYTES:
            out.warn(
                f"replicate: {out.bytes_written / 2**20:.0f} MiB is over the ~100 MiB client upload "
                "limit; upload the zip to storage and pass its URL as input_images"
            )
