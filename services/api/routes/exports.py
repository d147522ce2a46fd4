"""Exports: immutable dataset versions; list, read, read the manifest, download the zip."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import Response

from loraforge.catalog.models import Dataset, Export
from loraforge.errors import NotFound
from loraforge.stages import operations
from services.api import crud
from services.api.deps import ReleasingRoute, SessionDep, StoreDep
from services.api.routes.images import object_response
from services.api.schemas import ExportPublic, ExportsPublic

router = APIRouter(route_class=ReleasingRoute, tags=["exports"])


@router.get("/datasets/{dataset_id}/exports", response_model=ExportsPublic)
def read_exports(session: SessionDep, dataset_id: str) -> ExportsPublic:
    crud.get_or_404(session, Dataset, dataset_id)
    rows = operations.list_exports(session, dataset_id)  # completed versions, oldest first, as the CLI
    return ExportsPublic(data=[ExportPublic.model_validate(row) for row in rows], count=len(rows))


@router.get("/exports/{export_id}", response_model=ExportPublic)
def read_export(session: SessionDep, export_id: str) -> ExportPublic:
    return ExportPublic.model_validate(crud.get_or_404(session, Export, export_id))


@router.get("/exports/{export_id}/manifest")
def read_export_manifest(session: SessionDep, export_id: str) -> dict[str, Any]:
    export = crud.get_or_404(session, Export, export_id)
    if export.manifest is None:
        raise NotFound(f"export {export_id} has no manifest yet (status {export.status})")
    return export.manifest


@router.get("/exports/{export_id}/download", response_class=Response)
def download_export(session: SessionDep, store: StoreDep, export_id: str, redirect: bool = False) -> Response:
    export = crud.get_or_404(session, Export, export_id)
    if not export.object_key:
        raise NotFound(f"export {export_id} has no archive yet (status {export.status})")
    dataset = crud.get_or_404(session, Dataset, export.dataset_id)
    filename = f"{dataset.name}-{export.format}-{export.id[:8]}.zip"
    return object_response(
        store, export.object_key, media_type="application/zip", redirect=redirect, filename=filename
    )
