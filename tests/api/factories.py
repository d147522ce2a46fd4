"""Small factories that put catalog rows (through a session) and objects (in the store) for API tests."""

from __future__ import annotations

import hashlib
import io
import zipfile
from typing import Any

from sqlalchemy.orm import Session

from loraforge.catalog.models import (
    Caption,
    Dataset,
    Derivative,
    Export,
    Image,
    ImageMetadata,
    Task,
    Workspace,
)
from loraforge.imaging.thumbnail import encode_thumbnail, thumbnail_image
from loraforge.storage import ObjectStore
from loraforge.storage.keys import export_key, original_key, thumbnail_key
from tests.support.images import jpeg_bytes, noise_image


def make_workspace(session: Session, name: str = "studio") -> Workspace:
    workspace = Workspace(name=name)
    session.add(workspace)
    session.flush()
    return workspace


def make_dataset(session: Session, workspace: Workspace, name: str = "alice", **fields: Any) -> Dataset:
    dataset = Dataset(workspace_id=workspace.id, name=name, settings={}, **fields)
    session.add(dataset)
    session.flush()
    return dataset


def make_image(
    session: Session,
    store: ObjectStore,
    dataset: Dataset,
    *,
    seed: int = 0,
    filename: str | None = None,
    status: str = "pending",
    thumbnail: bool = True,
) -> Image:
    """An image row whose original (and thumbnail) bytes really are in the store."""
    data = jpeg_bytes(320, 240, seed=seed)
    sha = hashlib.sha256(data).hexdigest()
    store.put(original_key(sha), data, content_type="image/jpeg")
    thumb_key = None
    if thumbnail:
        thumb_key = thumbnail_key(sha)
        store.put(
            thumb_key,
            encode_thumbnail(thumbnail_image(noise_image(320, 240, seed))),
            content_type="image/webp",
        )
    image = Image(
        dataset_id=dataset.id,
        sha256=sha,
        object_key=original_key(sha),
        original_filename=filename or f"photo-{seed:03d}.jpg",
        source_kind="file",
        source_uri=f"/photos/photo-{seed:03d}.jpg",
        width=320,
        height=240,
        format="jpeg",
        bytes=len(data),
        phash="0" * 16,
        thumbnail_key=thumb_key,
        status=status,
    )
    session.add(image)
    session.flush()
    return image


def make_caption(
    session: Session, image: Image, text: str, *, variant: str = "blip", active: bool = True
) -> Caption:
    caption = Caption(
        image_id=image.id, variant=variant, text=text, source_model="tiny-blip", is_active=active
    )
    session.add(caption)
    session.flush()
    return caption


def make_metadata(session: Session, image: Image, key: str, value: Any) -> None:
    session.add(ImageMetadata(image_id=image.id, key=key, value=value))
    session.flush()


def make_bucket(session: Session, image: Image, *, width: int = 1024, height: int = 768) -> Derivative:
    derivative = Derivative(
        image_id=image.id,
        kind="bucket",
        target="sdxl",
        object_key=f"derived/{image.dataset_id}/{image.id}/bucket-abc.jpg",
        box=[0, 0, 320, 240],
        width=width,
        height=height,
        params_hash="abc",
        params={},
    )
    session.add(derivative)
    session.flush()
    return derivative


def make_task(session: Session, dataset: Dataset, *, kind: str = "curate", status: str = "RUNNING") -> Task:
    task = Task(dataset_id=dataset.id, kind=kind, status=status, total=10, done=4, progress=0.4, params={})
    session.add(task)
    session.flush()
    return task


def make_export(session: Session, store: ObjectStore, dataset: Dataset, files: dict[str, bytes]) -> Export:
    """A finished export whose zip is in the store."""
    export = Export(dataset_id=dataset.id, format="kohya", status="COMPLETED", image_count=len(files))
    session.add(export)
    session.flush()
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    export.object_key = export_key(dataset.id, export.id, "zip")
    store.put(export.object_key, out.getvalue(), content_type="application/zip")
    export.bytes = len(out.getvalue())
    export.manifest = {"format": "kohya", "files": sorted(files)}
    session.flush()
    return export
