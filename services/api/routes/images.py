"""Images: list with filters, read one with everything stages recorded, manual review, bytes, upload
(ingested at once, or staged for a build run)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, BinaryIO
from urllib.parse import quote

from fastapi import APIRouter, File, Query, UploadFile, status
from fastapi.responses import RedirectResponse, Response, StreamingResponse

from loraforge.catalog.models import Dataset, Image
from loraforge.errors import NotFound
from loraforge.stages import operations
from loraforge.stages.datasets import get_dataset
from loraforge.stages.options import IngestOptions
from loraforge.storage.keys import upload_prefix
from services.api import crud, pipeline
from services.api.deps import ContextDep, ReleasingRoute, SessionDep, StoreDep
from services.api.schemas import (
    ERROR_RESPONSES,
    BucketPublic,
    CaptionPublic,
    FacePublic,
    ImageDetail,
    ImagePublic,
    ImageReview,
    ImagesPublic,
    ImageStatus,
    Schema,
    TaskAccepted,
)
from services.api.uploads import store_uploads

router = APIRouter(route_class=ReleasingRoute, tags=["images"])
CHUNK_BYTES = 256 * 1024
MEDIA_TYPES = {"jpeg": "image/jpeg", "jpg": "image/jpeg", "png": "image/png", "webp": "image/webp"}


class UploadStaged(Schema):
    upload_batch: str
    names: list[str]


@router.get("/datasets/{dataset_id}/images", response_model=ImagesPublic)
def read_images(
    session: SessionDep,
    dataset_id: str,
    status_: Annotated[list[ImageStatus] | None, Query(alias="status")] = None,
    offset: Annotated[int, Query(ge=0, le=1_000_000_000)] = 0,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> ImagesPublic:
    crud.get_or_404(session, Dataset, dataset_id)
    rows, count = crud.list_images(session, dataset_id, statuses=status_ or (), offset=offset, limit=limit)
    return ImagesPublic(data=[ImagePublic.model_validate(row) for row in rows], count=count)


@router.post(
    "/datasets/{dataset_id}/images",
    response_model=TaskAccepted,
    status_code=status.HTTP_202_ACCEPTED,
    responses=ERROR_RESPONSES,
)
def upload_images(
    session: SessionDep,
    ctx: ContextDep,
    store: StoreDep,
    dataset_id: str,
    files: Annotated[list[UploadFile], File(min_length=1)],
) -> TaskAccepted:
    """Stream the pictures (or zips, or URL lists) into object storage, then ingest them; poll the task."""
    get_dataset(session, dataset_id)
    batch, _names = store_uploads(
        files, store, dataset_id=dataset_id, max_file_bytes=ctx.settings.max_file_bytes
    )
    try:
        task_id = pipeline.launch(
            ctx,
            stage=pipeline.StageName("ingest"),
            dataset_id=dataset_id,
            options=IngestOptions(upload_batch=batch),
        )
    except BaseException:
        for info in list(store.list(upload_prefix(dataset_id, batch))):
            store.delete(info.key)
        raise
    return TaskAccepted(task_id=task_id, kind="ingest", status="PENDING")


@router.post(
    "/datasets/{dataset_id}/uploads",
    response_model=UploadStaged,
    status_code=status.HTTP_201_CREATED,
    responses=ERROR_RESPONSES,
)
def stage_uploads(
    session: SessionDep,
    ctx: ContextDep,
    store: StoreDep,
    dataset_id: str,
    files: Annotated[list[UploadFile], File(min_length=1)],
) -> UploadStaged:
    """Store pictures (or zips, or URL lists) without ingesting them: give the batch to a build run
    (`upload_batch`) to run the whole pipeline on them."""
    get_dataset(session, dataset_id)
    batch, names = store_uploads(
        files, store, dataset_id=dataset_id, max_file_bytes=ctx.settings.max_file_bytes
    )
    return UploadStaged(upload_batch=batch, names=names)


@router.get("/images/{image_id}", response_model=ImageDetail)
def read_image(session: SessionDep, image_id: str) -> ImageDetail:
    image = crud.get_or_404(session, Image, image_id)
    dataset = crud.get_or_404(session, Dataset, image.dataset_id)
    bucket = operations.current_buckets(session, dataset, [image.id]).get(image.id)
    return ImageDetail(
        **ImagePublic.model_validate(image).model_dump(),
        thumbnail_key=image.thumbnail_key,
        metadata=crud.image_metadata(session, image.id),
        captions=[CaptionPublic.model_validate(c) for c in crud.image_captions(session, image.id)],
        faces=[FacePublic.model_validate(f) for f in crud.image_faces(session, image.id)],
        bucket=BucketPublic.model_validate(bucket) if bucket else None,
    )


@router.patch("/images/{image_id}", response_model=ImagePublic)
def review_image(session: SessionDep, image_id: str, body: ImageReview) -> ImagePublic:
    image = crud.get_or_404(session, Image, image_id)
    operations.review(session, image.dataset_id, [image.id], status=body.status, reason=body.reason)
    return ImagePublic.model_validate(image)


@router.get("/images/{image_id}/thumbnail", response_class=Response)
def read_thumbnail(session: SessionDep, store: StoreDep, image_id: str, redirect: bool = False) -> Response:
    image = crud.get_or_404(session, Image, image_id)
    if not image.thumbnail_key:
        raise NotFound(f"image {image_id} has no thumbnail yet")
    return object_response(store, image.thumbnail_key, media_type="image/webp", redirect=redirect)


@router.get("/images/{image_id}/original", response_class=Response)
def read_original(session: SessionDep, store: StoreDep, image_id: str, redirect: bool = False) -> Response:
    image = crud.get_or_404(session, Image, image_id)
    media_type = MEDIA_TYPES.get(image.format.lower(), "application/octet-stream")
    return object_response(store, image.object_key, media_type=media_type, redirect=redirect)


def object_response(
    store: StoreDep, key: str, *, media_type: str, redirect: bool, filename: str | None = None
) -> Response:
    """Stream an object, or send the client to a presigned URL so the bytes skip the API."""
    if redirect:
        return RedirectResponse(store.presigned_url(key), status_code=status.HTTP_307_TEMPORARY_REDIRECT)
    size = store.stat(key).size
    headers = {"Content-Length": str(size), "Cache-Control": "private, max-age=3600"}
    if filename:
        headers["Content-Disposition"] = content_disposition(filename)
    return StreamingResponse(_chunks(store.open(key)), media_type=media_type, headers=headers)


def content_disposition(filename: str) -> str:
    """`attachment` with an ASCII fallback name and the UTF-8 name (RFC 6266); nothing can break the header.

    Names come from catalog rows a CLI user may have typed anything into (quotes, CR/LF, non-ASCII).
    """
    printable = "".join(ch if ch.isprintable() else "_" for ch in filename)
    fallback = "".join(ch if ch.isascii() and ch not in '"\\;' else "_" for ch in printable) or "download"
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(printable, safe='')}"


def _chunks(stream: BinaryIO) -> Iterator[bytes]:
    try:
        while chunk := stream.read(CHUNK_BYTES):
            yield chunk
    finally:
        stream.close()
