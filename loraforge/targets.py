"""The facts of each target model (SD 1.5, SDXL, Flux): training size, generic bucket grid, caption budget.

Every part that needs one of these numbers (bucketing, exporters, captioning, the options models) reads it
here. The grid is the model's generic one (kohya's make_bucket_resolutions on it); a trainer that buckets by
another rule declares its own (loraforge.exporters.buckets), and the bucket stage renders for that rule.
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


# Step 64 for all three, the step every sd-scripts script accepts for them: train_network.py requires a
# multiple of 64 (NetworkTrainer.assert_extra_args), sdxl_train_network.py a multiple of 32, and
# flux_train_network.py 64 (FluxNetworkTrainer.assert_extra_args calls the base check first). SDXL at
# 1024 / 256-2048 / 64 gives kohya's 41 buckets.
TARGETS: dict[str, TargetFacts] = {
    "sd15": TargetFacts(512, 256, 1024, 64, max_tokens_for("sd15")),
    "sdxl": TargetFacts(1024, 256, 2048, 64, max_tokens_for("sdxl")),
    "flux": TargetFacts(1024, 256, 2048, 64, max_tokens_for("flux")),
}
TARGET_MODELS: tuple[str, ...] = tuple(TARGETS)


def target_facts(name: str) -> TargetFacts:
    try:
        return TARGETS[name]
    except KeyError:
        raise InvalidInput(f"target model must be one of {', '.join(TARGET_MODELS)}, not {name!r}") from None
