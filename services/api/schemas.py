"""Request and response schemas of the API, in families: XCreate / XUpdate / XPublic / XsPublic."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints, computed_field

TargetModel = Literal["sd15", "sdxl", "flux"]
ImageStatus = Literal["pending", "kept", "rejected", "duplicate"]
ReviewStatus = Literal["kept", "rejected", "auto"]


def _aware(value: datetime) -> datetime:
    # The catalog stores UTC; SQLite hands it back without a zone. Every timestamp leaves with one.
    return value if value.tzinfo else value.replace(tzinfo=UTC)


Timestamp = Annotated[datetime, AfterValidator(_aware)]
"""A timezone-aware UTC time: what every timestamp of the API is."""


NO_CONTROL = r"^[^\x00-\x1f\x7f]*$"
Label = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200, pattern=NO_CONTROL)
]
"""A name or word a person reads: trimmed, never blank, no control characters (no CR/LF in a header)."""
OptionalWord = Annotated[str, StringConstraints(strip_whitespace=True, max_length=200, pattern=NO_CONTROL)]
CaptionText = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=10_000, pattern=r"^[^\x00]+$")
]


class Schema(BaseModel):
    """Reads attributes of ORM rows, so a handler can validate a row straight into a public schema."""

    model_config = ConfigDict(from_attributes=True)


class ErrorBody(Schema):
    code: str
    message: str
    details: list[dict[str, Any]] | None = None


class ErrorPublic(Schema):
    error: ErrorBody


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorPublic, "description": "The request could not be read (malformed body)."},
    401: {"model": ErrorPublic, "description": "Missing or wrong bearer token."},
    403: {"model": ErrorPublic, "description": "Not allowed (e.g. a server path outside the import roots)."},
    404: {"model": ErrorPublic, "description": "A resource named in the path does not exist."},
    409: {"model": ErrorPublic, "description": "Conflicts with the current state (e.g. a run is active)."},
    413: {"model": ErrorPublic, "description": "The body, or a file in it, is over its size cap."},
    422: {"model": ErrorPublic, "description": "Invalid parameters or body."},
    503: {
        "model": ErrorPublic,
        "description": "The catalog or store is busy or unreachable; retry after `Retry-After` seconds.",
    },
}
"""Every error status the API answers with, documented on every route (one body shape for all)."""


class HealthPublic(Schema):
    status: Literal["ok", "degraded"]
    version: str
    catalog: bool
    storage: bool


class WorkspaceCreate(Schema):
    name: Label


class WorkspacePublic(Schema):
    id: str
    name: str
    created_at: Timestamp


class WorkspacesPublic(Schema):
    data: list[WorkspacePublic]
    count: int


class DatasetCreate(Schema):
    name: Label
    trigger_word: OptionalWord | None = None
    class_word: OptionalWord | None = None
    target_model: TargetModel = "sdxl"
    settings: dict[str, Any] = Field(default_factory=dict)


class DatasetUpdate(Schema):
    """Fields left out stay as they are; `settings` keys are merged into the stored settings."""

    trigger_word: OptionalWord | None = None
    class_word: OptionalWord | None = None
    target_model: TargetModel | None = None
    settings: dict[str, Any] | None = None


class DatasetPublic(Schema):
    id: str
    workspace_id: str
    name: str
    trigger_word: str | None
    class_word: str | None
    target_model: str
    settings: dict[str, Any]
    created_at: Timestamp
    updated_at: Timestamp


class DatasetsPublic(Schema):
    data: list[DatasetPublic]
    count: int


class DatasetStats(Schema):
    total: int
    by_status: dict[str, int]
    by_bucket: dict[str, int]
    captioned: int


class ImagePublic(Schema):
    id: str
    dataset_id: str
    sha256: str
    original_filename: str
    source_kind: str
    source_uri: str
    width: int
    height: int
    format: str
    bytes: int
    phash: str | None
    status: str
    status_reason: str | None
    status_manual: bool
    duplicate_of: str | None
    thumbnail_key: str | None = Field(default=None, exclude=True)
    created_at: Timestamp

    @computed_field  # type: ignore[prop-decorator]
    @property
    def has_thumbnail(self) -> bool:
        return self.thumbnail_key is not None


class ImagesPublic(Schema):
    data: list[ImagePublic]
    count: int


class ImageReview(Schema):
    """A manual keep/reject decision; it sticks (status_manual) when curation runs again."""

    status: ReviewStatus
    reason: str | None = Field(default=None, max_length=2000)


class CaptionPublic(Schema):
    id: str
    image_id: str
    variant: str
    text: str
    source_model: str | None
    is_active: bool
    edited: bool
    created_at: Timestamp


class CaptionsPublic(Schema):
    data: list[CaptionPublic]
    count: int


class CaptionUpdate(Schema):
    text: CaptionText
    variant: str | None = Field(default=None, max_length=100, description="Default: the active variant.")


class FacePublic(Schema):
    id: str
    detector: str
    bbox: list[Any]
    score: float
    landmarks: list[Any] | None


class BucketPublic(Schema):
    target: str | None
    width: int
    height: int
    box: list[Any] | None
    object_key: str


class ImageDetail(ImagePublic):
    metadata: dict[str, Any]
    captions: list[CaptionPublic]
    faces: list[FacePublic]
    bucket: BucketPublic | None


class TaskPublic(Schema):
    id: str
    dataset_id: str | None
    kind: str
    status: str
    progress: float
    done: int
    total: int
    error: str | None
    params: dict[str, Any]
    result: dict[str, Any] | None
    orchestrator_run_id: str | None
    parent_id: str | None = None
    heartbeat_at: Timestamp | None = None
    created_at: Timestamp
    started_at: Timestamp | None
    finished_at: Timestamp | None


class TasksPublic(Schema):
    data: list[TaskPublic]
    count: int


class TaskAccepted(Schema):
    """The answer to anything long: poll GET /tasks/{task_id}."""

    task_id: str
    kind: str
    status: str


class ExportPublic(Schema):
    id: str
    dataset_id: str
    format: str
    status: str
    object_key: str | None
    image_count: int
    bytes: int
    created_at: Timestamp


class ExportsPublic(Schema):
    data: list[ExportPublic]
    count: int


class TrainingPublic(Schema):
    id: str
    dataset_id: str
    export_id: str
    provider: str
    trainer_version: str | None
    destination: str | None
    params: dict[str, Any]
    status: str
    remote_id: str | None
    output_version: str | None
    """The trained version on Replicate, `owner/name:version`."""
    weights_url: str | None
    weights_key: str | None
    """Set once the weights are copied into the store: download them from GET /trainings/{id}/weights."""
    logs_tail: str | None
    error: str | None
    task_id: str | None
    """The `train` run that started it."""
    created_at: Timestamp
    updated_at: Timestamp


class TrainingsPublic(Schema):
    data: list[TrainingPublic]
    count: int


class WebhookAccepted(Schema):
    """What a webhook call changed: the training it concerns and its status now."""

    training_id: str
    status: str
