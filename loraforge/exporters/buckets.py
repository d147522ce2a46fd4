"""The bucket rule each exporter declares for its trainer, and what the checks and the bucket stage ask of it.

Every trainer re-buckets what it loads by its own rule: sd-scripts by `make_bucket_resolutions` with the step
its script requires, OneTrainer by mgds' fixed aspect set, SimpleTuner by its pixel-area rounding, ai-toolkit
by `get_bucket_for_image_size` with the model's divisibility, Replicate's trainer by the ai-toolkit list it
pins. Each exporter module ports its trainer's rule (citing the file and function) and returns it from
`bucket_rule(spec)`; the bucket stage renders the sizes that rule keeps as they are, and validation flags any
exported picture the rule would still resize or crop.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

from loraforge.errors import InvalidInput
from loraforge.exporters.base import ExportSpec, TargetModel
from loraforge.exporters.registry import get_exporter
from loraforge.imaging.buckets import BucketRule, BucketSet, Placement
from loraforge.targets import TARGETS


@dataclass(frozen=True)
class AnySize:
    """A loader that takes pictures of any size as they are (HF ImageFolder has no buckets); the bucket stage
    then renders the model's generic grid."""

    generic: BucketSet
    name: str = "any size"

    def place(self, width: int, height: int) -> Placement:
        return Placement((width, height), (width, height))

    def buckets(self) -> BucketSet:
        return self.generic


def rule_for(spec: ExportSpec) -> BucketRule:
    """The bucket rule of the spec's trainer, with the settings the exporter writes into its config."""
    return get_exporter(spec.format).bucket_rule(spec)


def trainer_rule(trainer: str, model: str, resolution: int | None = None) -> BucketRule:
    """The rule an export for `trainer` at its default settings declares: what the bucket stage renders."""
    if model not in TARGETS:
        raise InvalidInput(f"unknown target model {model!r}; use one of {', '.join(sorted(TARGETS))}")
    return rule_for(ExportSpec(format=trainer, target_model=cast(TargetModel, model), resolution=resolution))


def upscale_factor(width: int, height: int, placement: Placement) -> float:
    """How much the trainer enlarges a picture before cropping its bucket (1.0 or less: no enlargement)."""
    return max(placement.resized[0] / width, placement.resized[1] / height)
