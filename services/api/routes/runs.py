"""Runs: start a pipeline stage on a dataset; each stage's request body is its options model.

Every run answers 202 with the task to poll; 409 when another run holds the dataset; 403 for a server
path outside the import roots; 422 for an unknown field or a bad value.
"""

from __future__ import annotations

from fastapi import APIRouter, status

from loraforge.stages.datasets import get_dataset
from loraforge.stages.options import (
    BucketOptions,
    BuildOptions,
    CaptionOptions,
    CurateOptions,
    ExportOptions,
    IngestOptions,
    StageOptions,
)
from services.api import pipeline
from services.api.deps import ContextDep, ReleasingRoute, SessionDep
from services.api.schemas import ERROR_RESPONSES, TaskAccepted

router = APIRouter(route_class=ReleasingRoute, tags=["runs"])
ACCEPTED = {
    "response_model": TaskAccepted,
    "status_code": status.HTTP_202_ACCEPTED,
    "responses": ERROR_RESPONSES,
}


def start_run(
    session: SessionDep, ctx: ContextDep, dataset_id: str, stage: str, options: StageOptions
) -> TaskAccepted:
    get_dataset(session, dataset_id)
    task_id = pipeline.launch(ctx, stage=pipeline.StageName(stage), dataset_id=dataset_id, options=options)
    return TaskAccepted(task_id=task_id, kind=stage, status="PENDING")


@router.post("/datasets/{dataset_id}/runs/ingest", **ACCEPTED)
def create_ingest_run(
    session: SessionDep, ctx: ContextDep, dataset_id: str, options: IngestOptions
) -> TaskAccepted:
    """Ingest from URLs or from folders under the operator's import roots (uploads: POST .../images)."""
    return start_run(session, ctx, dataset_id, "ingest", options)


@router.post("/datasets/{dataset_id}/runs/curate", **ACCEPTED)
def create_curate_run(
    session: SessionDep, ctx: ContextDep, dataset_id: str, options: CurateOptions
) -> TaskAccepted:
    return start_run(session, ctx, dataset_id, "curate", options)


@router.post("/datasets/{dataset_id}/runs/caption", **ACCEPTED)
def create_caption_run(
    session: SessionDep, ctx: ContextDep, dataset_id: str, options: CaptionOptions
) -> TaskAccepted:
    """The openai captioner's endpoint and key are server settings, never part of a request."""
    return start_run(session, ctx, dataset_id, "caption", options)


@router.post("/datasets/{dataset_id}/runs/bucket", **ACCEPTED)
def create_bucket_run(
    session: SessionDep, ctx: ContextDep, dataset_id: str, options: BucketOptions
) -> TaskAccepted:
    return start_run(session, ctx, dataset_id, "bucket", options)


@router.post("/datasets/{dataset_id}/runs/export", **ACCEPTED)
def create_export_run(
    session: SessionDep, ctx: ContextDep, dataset_id: str, options: ExportOptions
) -> TaskAccepted:
    """The version is stored in object storage; download it from GET /exports/{id}/download."""
    return start_run(session, ctx, dataset_id, "export", options)


@router.post("/datasets/{dataset_id}/runs/build", **ACCEPTED)
def create_build_run(
    session: SessionDep, ctx: ContextDep, dataset_id: str, options: BuildOptions
) -> TaskAccepted:
    """The whole pipeline: ingest, curate, caption, bucket and export."""
    return start_run(session, ctx, dataset_id, "build", options)
