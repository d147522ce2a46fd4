"""The facts of each target model (SD 1.5, SDXL, Flux): training size, bucket grid and caption budget.

Every part that needs one of these numbers (bucketing, exporters, captioning, the options models) reads it
here, so the bucket grid a picture is cropped to and the one an export's trainer config declares agree.
"""

from __future__ import annotations

from dataclasses import dataclass

from loraforge.captioning.tokens import max_tokens_for
from loraforge.errors import InvalidInput


@dataclass(frozen=True)
class TargetFacts:
    resolution: int
    """Training side in pixels; buckets hold about resolution² pixels."""
    min_reso: int
    max_reso: int
    bucket_step: int
    """Bucket sides are multiples of this (sd-scripts' bucket_reso_steps)."""
    max_caption_tokens: int


# FORMATS.md: SD 1.x buckets on a 64 grid; SDXL at 1024 / 256-2048 / 64 (kohya's 41 buckets, and a multiple
# of the 32 that sdxl_train_network requires); Flux on kohya's Flux LoRA step of 32.
TARGETS: dict[str, TargetFacts] = {
    "sd15": TargetFacts(512, 256, 1024, 64, max_tokens_for("sd15")),
    "sdxl": TargetFacts(1024, 256, 2048, 64, max_tokens_for("sdxl")),
    "flux": TargetFacts(1024, 256, 2048, 32, max_tokens_for("flux")),
}
TARGET_MODELS: tuple[str, ...] = tuple(TARGETS)


def target_facts(name: str) -> TargetFacts:
    try:
        return TARGETS[name]
    except KeyError:
        raise InvalidInput(f"target model must be one of {', '.join(TARGET_MODELS)}, not {name!r}") from None
