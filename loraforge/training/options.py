"""What a user may ask of a training: the destination, the trainer and its common inputs.

The CLI flags (`loraforge train`), the REST request body (`POST /datasets/{id}/trainings`) and the flow's
parameter are generated from this one model, like the stage options (loraforge.stages.options). Bounds
here are only sanity limits: the trainer's own schema decides what it accepts (loraforge.training.schema).
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field, StringConstraints

from loraforge.errors import InvalidInput
from loraforge.stages.options import Name, Scalar, StageOptions, Text

DEFAULT_TRAINER = "ostris/flux-dev-lora-trainer"
IMAGES_INPUT = "input_images"
"""The trainer input that receives the dataset's zip (Replicate's Flux trainers all call it this)."""
TRIGGER_INPUT = "trigger_word"

# Replicate's model names: owner/name, lowercase letters, digits, '-', '_' and '.' (owners may have capitals).
ModelName = Annotated[
    str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*/[a-z0-9][a-z0-9_.-]*$", max_length=200)
]
TrainerRef = Annotated[
    str,
    StringConstraints(
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*/[a-z0-9][a-z0-9_.-]*(:[0-9a-f]{16,128})?$", max_length=300
    ),
]

NAMED_INPUTS = ("steps", "lora_rank", "learning_rate", "batch_size", "resolution", "autocaption")
"""Fields of TrainOptions that are trainer inputs of the same name."""


class TrainOptions(StageOptions):
    """A LoRA training on Replicate: the dataset's export is uploaded and trained into `destination`."""

    destination: ModelName = Field(
        description="Replicate model (owner/name) that receives the trained version; created private "
        "when missing.",
        json_schema_extra={"cli": "--destination"},
    )
    trainer: TrainerRef = Field(
        default=DEFAULT_TRAINER,
        description="Trainer model (owner/name, or owner/name:version); its latest version is used.",
    )
    steps: int | None = Field(default=None, ge=1, le=1_000_000, description="Training steps.")
    lora_rank: int | None = Field(default=None, ge=1, le=1024, description="LoRA rank.")
    learning_rate: float | None = Field(default=None, gt=0, le=1, description="Learning rate.")
    batch_size: int | None = Field(default=None, ge=1, le=1024, description="Batch size.")
    resolution: Text | None = Field(
        default=None, description='Training resolutions, as the trainer takes them (e.g. "512,768,1024").'
    )
    autocaption: bool | None = Field(
        default=None,
        description="Let the trainer caption the pictures itself (ours are sent as .txt files).",
        json_schema_extra={"cli": "--autocaption/--no-autocaption"},
    )
    inputs: dict[Name, Scalar] = Field(
        default_factory=dict,
        max_length=50,
        description="Any other trainer input, checked against the trainer's schema.",
        json_schema_extra={"cli": "--input"},
    )

    @property
    def trainer_model(self) -> str:
        return self.trainer.split(":", 1)[0]

    @property
    def trainer_version(self) -> str | None:
        """The version named with the trainer, if any (else the trainer's latest is read)."""
        return self.trainer.split(":", 1)[1] if ":" in self.trainer else None


def requested_inputs(options: TrainOptions) -> dict[str, Any]:
    """The trainer inputs the user asked for, before the trainer's schema checks them.

    The zip and the dataset's trigger word are added later (loraforge.training.service.plan_training). A
    named option and the same key in `inputs` would be two answers to one question, so that is refused.
    """
    named = {key: getattr(options, key) for key in NAMED_INPUTS if getattr(options, key) is not None}
    twice = sorted(set(named) & set(options.inputs))
    if twice:
        raise InvalidInput(f"given both as an option and as --input: {', '.join(twice)}")
    if IMAGES_INPUT in options.inputs:
        raise InvalidInput(f"{IMAGES_INPUT} is the dataset's export; it cannot be given as an input")
    inputs: dict[str, Any] = dict(named)
    inputs.update({key: value for key, value in options.inputs.items() if value is not None})
    return inputs
