"""The typed options of every stage: the one place their parameters, defaults, bounds and help live.

The CLI flags, the Prefect flow parameters, the REST request bodies and the dashboard's forms are all
generated from these models, so a parameter added here appears everywhere and is checked the same way.
Unknown fields are refused. Values a remote client may not choose (server paths, endpoints, keys) are
either absent from these models or checked by `check_client_safe` before the API accepts a run.
"""

from __future__ import annotations

import copy
import math
import types
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

from loraforge.errors import InvalidInput
from loraforge.targets import TARGET_MODELS

TargetModel = Literal["sd15", "sdxl", "flux"]
CaptionerKind = Literal["auto", "blip", "git", "florence2", "openai", "template"]
FaceDetectorKind = Literal["opencv", "retinaface"]
ImageFormat = Literal["auto", "jpg", "png", "webp"]
ExportFormat = Literal["kohya", "ai-toolkit", "onetrainer", "simpletuner", "hf", "replicate"]
Text = Annotated[str, StringConstraints(max_length=1000)]
Name = Annotated[str, StringConstraints(min_length=1, max_length=200)]
ModelRef = Annotated[str, StringConstraints(min_length=1, max_length=500)]
Source = Annotated[str, StringConstraints(min_length=1, max_length=4096, pattern=r"^[^\x00]+$")]


ShardSize = Annotated[int, Field(ge=1, le=100_000)]
SHARD_HELP = "Pictures per retryable task (default: LORAFORGE_SHARD_SIZE)."

assert set(TARGET_MODELS) == {"sd15", "sdxl", "flux"}  # TargetModel above must follow loraforge.targets


def _is_int(annotation: Any) -> bool:
    """`int`, `int | None`, or either with Annotated constraints."""
    members = get_args(annotation) if get_origin(annotation) in (Union, types.UnionType) else (annotation,)
    plain = {get_args(member)[0] if get_origin(member) is Annotated else member for member in members}
    return int in plain and plain <= {int, type(None)}


class StageOptions(BaseModel):
    """Base of every options model: unknown fields are an error, values are immutable."""

    # strict: a JSON `0` is not `false` and `false` is not a number; what the schema says is what passes.
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    @classmethod
    def model_refs(cls) -> tuple[str, ...]:
        """Fields naming a model or weights: a remote client may give names, never server paths."""
        return ()

    @model_validator(mode="before")
    @classmethod
    def _whole_numbers(cls, data: Any) -> Any:
        """Strict mode refuses 240.0 for an int field, yet JSON (and its schema) call 240.0 an integer."""
        if not isinstance(data, dict):
            return data
        whole = {name for name, info in cls.model_fields.items() if _is_int(info.annotation)}
        return {
            key: int(value) if key in whole and isinstance(value, float) and value.is_integer() else value
            for key, value in data.items()
        }


NEEDS_INPUT: dict[str, Any] = {
    "anyOf": [
        {"required": ["sources"], "properties": {"sources": {"minItems": 1}}},
        {"required": ["upload_batch"], "properties": {"upload_batch": {"type": "string"}}},
    ]
}
"""The JSON-schema form of "give at least one source (or an upload batch)", so OpenAPI says it too."""


class IngestOptions(StageOptions):
    model_config = ConfigDict(json_schema_extra=NEEDS_INPUT)

    sources: list[Source] = Field(
        default_factory=list,
        max_length=1000,
        description="Folders, zip files, image files, .txt lists of URLs, or http(s) URLs.",
    )
    upload_batch: str | None = Field(
        default=None,
        pattern=r"^[0-9a-f]{32}$",
        description="A batch of files uploaded through the API (already in object storage).",
    )
    shard_size: ShardSize | None = Field(default=None, description=SHARD_HELP)

    @model_validator(mode="after")
    def _has_input(self) -> IngestOptions:
        if not self.sources and not self.upload_batch:
            raise ValueError("give at least one source (or an upload batch)")
        for source in self.sources:
            if "\x00" in source:
                raise ValueError("a source must not contain a NUL character")
        return self


def _known_check_names(schema: dict[str, Any]) -> None:
    """The check names as the thresholds' property names (read when the schema is built, not on import)."""
    from loraforge.curation import all_checks

    schema["properties"]["thresholds"]["propertyNames"] = {"enum": sorted(all_checks())}


def _tagging_checks(value: list[str] | None) -> list[str] | None:
    """Only the checks that tag by default (grayscale) can be asked to reject."""
    if value is not None:
        from loraforge.curation.registry import check_reject_names

        try:
            check_reject_names(value)
        except InvalidInput as exc:
            raise ValueError(str(exc)) from None
    return value


class CurateOptions(StageOptions):
    model_config = ConfigDict(json_schema_extra=_known_check_names)

    target: TargetModel | None = Field(
        default=None,
        description="Model whose resolution is judged: sd15, sdxl or flux (default: the dataset's).",
    )
    thresholds: dict[Name, Annotated[float, Field(ge=0, allow_inf_nan=False)]] | None = Field(
        default=None,
        json_schema_extra={"cli": "--threshold"},
        description="Check name -> threshold (scores 0..1; above 1 turns a check off); saved on the dataset.",
    )
    clip_model: ModelRef | None = Field(
        default=None,
        description="MODEL:WEIGHTS of an open_clip model; its embeddings confirm near duplicates.",
    )
    reject_checks: list[Name] | None = Field(
        default=None,
        max_length=20,
        json_schema_extra={"cli": "--reject-check"},
        description="Reject on a check that only tags by default: grayscale pictures are kept and captioned "
        "'black and white photo' unless given here; saved on the dataset.",
    )
    shard_size: ShardSize | None = Field(default=None, description=SHARD_HELP)

    @field_validator("reject_checks")
    @classmethod
    def _tagging_checks(cls, value: list[str] | None) -> list[str] | None:
        return _tagging_checks(value)

    @field_validator("thresholds")
    @classmethod
    def _known_checks(cls, value: dict[str, float] | None) -> dict[str, float] | None:
        if not value:
            return None
        from loraforge.curation import all_checks

        known = sorted(all_checks())
        for name, number in value.items():
            if name not in known:
                raise ValueError(f"unknown check {name!r}; known: {', '.join(known)}")
            if not math.isfinite(number) or number < 0:
                raise ValueError(f"threshold of {name} must be 0 or more (above 1 turns the check off)")
        return value

    @classmethod
    def model_refs(cls) -> tuple[str, ...]:
        return ("clip_model",)


class CaptionOptions(StageOptions):
    captioner: CaptionerKind = Field(
        default="auto",
        description="auto (a local model if found, else template), blip, git, florence2, openai, template.",
    )
    model: ModelRef | None = Field(default=None, description="Captioning model: hub id or model folder name.")
    trigger: Text | None = Field(
        default=None, description="Trigger word, e.g. 'ohwx woman'; saved on the dataset."
    )
    class_word: Text | None = Field(
        default=None, description="Class word after the trigger, e.g. 'woman'; saved on the dataset."
    )
    template: Text | None = Field(default=None, description="Caption template for the template captioner.")
    prompt: Text | None = Field(
        default=None, description="Model prompt or task, e.g. <MORE_DETAILED_CAPTION>."
    )
    variant: Name | None = Field(
        default=None, description="Name of the caption variant (default: captioner)."
    )
    prefix: Text = Field(default="", description="Text put before every caption.")
    suffix: Text = Field(default="", description="Text put after every caption.")
    placement: Literal["front", "end"] = Field(
        default="front", description="Trigger at the front or the end."
    )
    batch_size: int | None = Field(default=None, ge=1, le=1024, description="Pictures per model call.")
    pool_size: int | None = Field(
        default=None, ge=1, le=256, description="Model actors (copies of the model)."
    )
    num_gpus: float | None = Field(
        default=None, ge=0, le=8, description="GPUs per actor; 0.5 shares one GPU."
    )
    shard_size: ShardSize | None = Field(default=None, description=SHARD_HELP)

    @classmethod
    def model_refs(cls) -> tuple[str, ...]:
        return ("model",)


BUCKET_LIST = (
    r"^\s*[1-9][0-9]{1,4}\s*[xX]\s*[1-9][0-9]{1,4}\s*([,;]\s*[1-9][0-9]{1,4}\s*[xX]\s*[1-9][0-9]{1,4}\s*)*$"
)


GRID_FIELDS = ("min_reso", "max_reso", "step", "buckets")
TRAINER_OR_GRID: dict[str, Any] = {
    "anyOf": [
        {"properties": {"trainer": {"type": "null"}}},
        {"properties": {name: {"type": "null"} for name in GRID_FIELDS}},
    ]
}
"""The JSON-schema form of `_grid_or_trainer`: with a trainer, the generic grid fields stay unset."""


class BucketOptions(StageOptions):
    model_config = ConfigDict(json_schema_extra=TRAINER_OR_GRID)

    target: TargetModel | None = Field(
        default=None, description="Model the buckets are for: sd15, sdxl or flux (default: the dataset's)."
    )
    trainer: ExportFormat | None = Field(
        default=None,
        description="Trainer (export format) whose own bucket rule the pictures are cut for, so it takes "
        "them as they are (default: the model's generic grid).",
    )
    resolution: int | None = Field(
        default=None, ge=64, le=8192, description="Training resolution (default per target)."
    )
    min_reso: int | None = Field(default=None, ge=64, le=8192, description="Smallest bucket side.")
    max_reso: int | None = Field(default=None, ge=64, le=16384, description="Largest bucket side.")
    step: int | None = Field(default=None, ge=8, le=1024, description="Bucket side step in pixels.")
    buckets: Annotated[str, StringConstraints(max_length=2000, pattern=BUCKET_LIST)] | None = Field(
        default=None, description="Own bucket list, e.g. '1024x1024,1152x896'; replaces the generated set."
    )
    max_upscale: float = Field(default=1.5, ge=1.0, le=16.0, description="Largest allowed upscale factor.")
    face_detector: FaceDetectorKind = Field(
        default="opencv", description="opencv (no download) or retinaface."
    )
    face_weights: ModelRef | None = Field(
        default=None, description="RetinaFace weights (file name in the model dir)."
    )
    face_margin: float = Field(
        default=0.25, ge=0.0, le=4.0, description="Room kept around faces, per face size."
    )
    image_format: ImageFormat = Field(
        default="auto",
        description="File format of the cropped pictures: auto keeps PNG sources as PNG (lossless) and "
        "writes the rest as JPEG; or jpg, png, webp for all.",
    )
    batch_size: int = Field(
        default=4, ge=1, le=1024, description="Training batch size the buckets are checked for."
    )
    shard_size: ShardSize | None = Field(default=None, description=SHARD_HELP)

    @model_validator(mode="after")
    def _grid_or_trainer(self) -> BucketOptions:
        if self.trainer is not None:
            shaping = [name for name in GRID_FIELDS if getattr(self, name) is not None]
            if shaping:
                raise ValueError(
                    f"{', '.join(shaping)} shape the generic grid; with a trainer the buckets follow its own "
                    "rule (only the resolution may change)"
                )
        return self

    @field_validator("buckets")
    @classmethod
    def _bucket_list(cls, value: str | None) -> str | None:
        if value is not None:
            from loraforge.imaging.buckets import parse_bucket_list

            try:
                parse_bucket_list(value)
            except InvalidInput as exc:
                raise ValueError(str(exc)) from None
        return value

    @classmethod
    def model_refs(cls) -> tuple[str, ...]:
        return ("face_weights",)


Scalar = str | int | float | bool | None


class ExportOptions(StageOptions):
    format: ExportFormat = Field(
        default="kohya",
        description="Trainer format of the export.",
        json_schema_extra={"cli": ["--format", "-f"]},
    )
    repeats: int | None = Field(
        default=None, ge=0, le=10_000, description="Repeats per image (kohya folder prefix)."
    )
    zip: bool = Field(default=False, description="Also store a zip of the folder form.")
    strict: bool = Field(default=False, description="Refuse to export when a validation check fails.")
    include_rejected: bool = Field(default=False, description="Export rejected pictures too.")
    max_upscale: float | None = Field(
        default=None,
        ge=1.0,
        le=16.0,
        description="Leave out (and name) pictures the bucket enlarges more than this (default: none).",
    )
    caption_extension: Annotated[str, StringConstraints(pattern=r"^\.[a-z0-9]{1,10}$")] = Field(
        default=".txt",
        description="Extension of the caption files, e.g. .caption (kohya, ai-toolkit; others read .txt).",
    )
    options: dict[Name, Scalar] = Field(
        default_factory=dict,
        max_length=50,
        description="Format extras (batch_size, resolution, shuffle_caption, ...).",
        json_schema_extra={"cli": "--option"},
    )

    @model_validator(mode="after")
    def _caption_extension(self) -> ExportOptions:
        _caption_extension_fits(self.format, self.caption_extension)
        return self


def _caption_extension_fits(format: str, extension: str) -> None:
    from loraforge.exporters.base import check_caption_extension

    try:
        check_caption_extension(format, extension)
    except InvalidInput as exc:
        raise ValueError(str(exc)) from None


def _same(model: type[BaseModel], name: str, **changes: Any) -> Any:
    """A field defined once in a stage's model, reused (with a changed default) by BuildOptions."""
    info = copy.copy(model.model_fields[name])
    for key, value in changes.items():
        setattr(info, key, value)
    return info


class BuildOptions(StageOptions):
    """The whole pipeline (`loraforge run`): each field is the same field as in its stage's model."""

    model_config = ConfigDict(json_schema_extra=NEEDS_INPUT)

    sources: list[Source] = _same(IngestOptions, "sources")
    upload_batch: str | None = _same(IngestOptions, "upload_batch")
    trigger: Text | None = _same(CaptionOptions, "trigger")
    class_word: Text | None = _same(CaptionOptions, "class_word")
    target: TargetModel = Field(default="sdxl", description="Model the LoRA is for: sd15, sdxl or flux.")
    reject_checks: list[Name] | None = _same(CurateOptions, "reject_checks")
    captioner: CaptionerKind = _same(CaptionOptions, "captioner")
    model: ModelRef | None = _same(CaptionOptions, "model")
    template: Text | None = _same(CaptionOptions, "template")
    caption_prompt: Text | None = _same(CaptionOptions, "prompt")
    caption_batch_size: int | None = _same(CaptionOptions, "batch_size")
    resolution: int | None = _same(BucketOptions, "resolution")
    face_detector: FaceDetectorKind = _same(BucketOptions, "face_detector")
    max_upscale: float = _same(BucketOptions, "max_upscale")
    image_format: ImageFormat = _same(BucketOptions, "image_format")
    format: ExportFormat = _same(ExportOptions, "format")
    repeats: int | None = _same(ExportOptions, "repeats")
    zip: bool = _same(ExportOptions, "zip")
    strict: bool = _same(ExportOptions, "strict")
    allow_upscale: bool = Field(
        default=False,
        description="Export pictures the bucket enlarges beyond --max-upscale too (else left out and named).",
    )
    caption_extension: str = _same(ExportOptions, "caption_extension")
    shard_size: ShardSize | None = Field(default=None, description=SHARD_HELP)

    @field_validator("reject_checks")
    @classmethod
    def _tagging_checks(cls, value: list[str] | None) -> list[str] | None:
        return _tagging_checks(value)

    @model_validator(mode="after")
    def _has_input(self) -> BuildOptions:
        self.ingest()  # the same rule as the ingest stage's
        _caption_extension_fits(self.format, self.caption_extension)
        return self

    @classmethod
    def model_refs(cls) -> tuple[str, ...]:
        return ("model",)

    def ingest(self) -> IngestOptions:
        return IngestOptions(sources=self.sources, upload_batch=self.upload_batch, shard_size=self.shard_size)

    def curate(self) -> CurateOptions:
        return CurateOptions(target=self.target, reject_checks=self.reject_checks, shard_size=self.shard_size)

    def caption(self) -> CaptionOptions:
        return CaptionOptions(
            captioner=self.captioner,
            model=self.model,
            trigger=self.trigger,
            class_word=self.class_word,
            template=self.template,
            prompt=self.caption_prompt,
            batch_size=self.caption_batch_size,
            shard_size=self.shard_size,
        )

    def bucket(self) -> BucketOptions:
        # Cut for the trainer the export is for, so it neither resizes nor crops what it gets.
        return BucketOptions(
            target=self.target,
            trainer=self.format,
            resolution=self.resolution,
            face_detector=self.face_detector,
            max_upscale=self.max_upscale,
            image_format=self.image_format,
            shard_size=self.shard_size,
        )

    def export(self) -> ExportOptions:
        return ExportOptions(
            format=self.format,
            repeats=self.repeats,
            zip=self.zip,
            strict=self.strict,
            caption_extension=self.caption_extension,
            max_upscale=None if self.allow_upscale else self.max_upscale,
        )


Id = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{32}$")]


class SearchAddOptions(StageOptions):
    """The candidates a client picked from a search preview, to download and ingest (not a pipeline
    stage: the API's `POST /datasets/{id}/searches/{search_id}/add` starts it)."""

    search_id: Id
    candidate_ids: list[Id] = Field(min_length=1, max_length=500)


STAGE_OPTIONS: dict[str, type[StageOptions]] = {
    "ingest": IngestOptions,
    "curate": CurateOptions,
    "caption": CaptionOptions,
    "bucket": BucketOptions,
    "export": ExportOptions,
    "build": BuildOptions,
}
"""Stage key -> its options model (the API's run routes, the dashboard's forms and the CLI use it)."""
