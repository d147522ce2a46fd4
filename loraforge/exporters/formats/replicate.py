"""Replicate's ostris/flux-dev-lora-trainer (and Civitai, fal): a flat set of jpg/png + same-stem .txt.

Written into a ZipSink this is the `input_images` zip: no parent folder, no other files.

Buckets: the trainer (replicate/flux-fine-tuner) pins ai-toolkit at commit bedb8197 (2024-10-20), whose
`get_bucket_for_image_size` picks from a fixed list scaled down to the picture's own pixel count
(`PinnedAiToolkitBuckets`). At 1024 it keeps only 1024x1024, 2048x512 and 512x2048 as they are: every other
size is moved to a smaller list entry and cropped. So the bucket stage cuts each picture to one of those
three around its faces rather than leave a centre crop to the trainer. The rule holds at the largest
training resolution (the `resolution` input, "512,768,1024" by default); at 512 and 768 ai-toolkit trains
copies of these three shapes scaled down whole.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from loraforge.exporters.base import ExportItem, ExportSpec
from loraforge.exporters.registry import register_exporter
from loraforge.exporters.writer import ExportWriter
from loraforge.imaging.buckets import BucketSet, Placement, fixed_point_set

UPLOAD_LIMIT_BYTES = 100 * 1024 * 1024
"""Above this the Replicate client's upload is unreliable; pass a URL to the zip instead."""
PINNED_AI_TOOLKIT = "bedb8197a29cf885b284e137a397d9bb8de620ec"
"""The ai-toolkit submodule commit of replicate/flux-fine-tuner (main, 2025-06-04)."""
BUCKET_TOLERANCE = 64
"""DatasetConfig.bucket_tolerance's default at that commit; the trainer's config does not set it."""

RESOLUTIONS_1024: tuple[tuple[int, int], ...] = (
    (1024, 1024),
    (2048, 512), (1984, 512), (1920, 512), (1856, 512), (1792, 576), (1728, 576), (1664, 576), (1600, 640),
    (1536, 640), (1472, 704), (1408, 704), (1344, 704), (1344, 768), (1280, 768), (1216, 832), (1152, 832),
    (1152, 896), (1088, 896), (1088, 960), (1024, 960),
    (960, 1024), (960, 1088), (896, 1088), (896, 1152), (832, 1152), (832, 1216), (768, 1280), (768, 1344),
    (704, 1408), (704, 1472), (640, 1536), (640, 1600), (576, 1664), (576, 1728), (576, 1792), (512, 1856),
    (512, 1920), (512, 1984), (512, 2048),
    (8192, 128), (128, 8192),
)  # fmt: skip
"""toolkit/buckets.py resolutions_1024 at the pinned commit, as (width, height), in its order."""


@dataclass(frozen=True)
class PinnedAiToolkitBuckets:
    """The pinned ai-toolkit's bucketing (ostris/ai-toolkit at bedb8197, toolkit/buckets.py,
    get_bucket_for_image_size and get_bucket_sizes; placed by toolkit/dataloader_mixins.py
    BucketsMixin.setup_buckets: scaled to cover the bucket, sides rounded up, centre-cropped)."""

    resolution: int
    min_reso: int
    max_reso: int
    """Side limits of the sizes the bucket stage offers (they leave out the 8192x128 extremes)."""
    divisibility: int = BUCKET_TOLERANCE
    name: str = "Replicate flux-dev-lora-trainer (ai-toolkit bedb8197)"

    def bucket_sizes(self, resolution: int) -> list[tuple[int, int]]:
        """get_bucket_sizes: the 1024 list scaled to `resolution`, each side floored to the divisibility."""
        scaler = resolution / 1024
        sizes = []
        for width, height in RESOLUTIONS_1024:
            w, h = int(width * scaler), int(height * scaler)
            sizes.append((w - w % self.divisibility, h - h % self.divisibility))
        return sizes

    def bucket_of(self, width: int, height: int) -> tuple[int, int]:
        """get_bucket_for_image_size: the list at the smaller of the resolution and the picture's own
        square side; the picture's size if listed, else the entry cropping fewest pixels (first on ties)."""
        sizes = self.bucket_sizes(min(self.resolution, int((width * height) ** 0.5)))
        if (width, height) in sizes:
            return (width, height)
        best, fewest = None, math.inf
        for bucket in sizes:
            scale = max(bucket[0] / width, bucket[1] / height)
            new_w, new_h = int(width * scale), int(height * scale)
            removed = (new_w - bucket[0]) * new_h + (new_h - bucket[1]) * new_w
            if removed < fewest:
                best, fewest = bucket, removed
        assert best is not None  # the list is never empty
        return best

    def place(self, width: int, height: int) -> Placement:
        bucket = self.bucket_of(width, height)
        scale = max(bucket[0] / width, bucket[1] / height)
        return Placement(bucket, (int(math.ceil(width * scale)), int(math.ceil(height * scale))))

    def buckets(self) -> BucketSet:
        sizes = self.bucket_sizes(self.resolution)
        inside = [(w, h) for w, h in sizes if min(w, h) >= self.min_reso and max(w, h) <= self.max_reso]
        return fixed_point_set(self.name, inside, self)


@register_exporter("replicate")
class ReplicateExporter:
    name = "replicate"
    default_repeats = 1

    def bucket_rule(self, spec: ExportSpec) -> PinnedAiToolkitBuckets:
        assert spec.resolution and spec.min_bucket_reso and spec.max_bucket_reso
        return PinnedAiToolkitBuckets(spec.resolution, spec.min_bucket_reso, spec.max_bucket_reso)

    def configs(self, spec: ExportSpec) -> dict[str, str]:
        return {}  # the upload zip holds pictures and captions only

    def write(self, items: Sequence[ExportItem], spec: ExportSpec, out: ExportWriter) -> None:
        if spec.target_model != "flux":
            out.warn(
                f"replicate: flux-dev-lora-trainer trains Flux only; this dataset targets {spec.target_model}"
            )
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
