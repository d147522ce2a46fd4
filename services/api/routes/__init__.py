"""The /api/v1 router: health is open, webhooks carry their own signature, every other resource router sits
behind the bearer token."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from services.api.deps import authorize
from services.api.routes import (
    bulk,
    captions,
    cards,
    datasets,
    exports,
    health,
    identity,
    images,
    runs,
    search,
    tasks,
    trainings,
    webhooks,
    workspaces,
)
from services.api.schemas import ERROR_RESPONSES


def build_api_router() -> APIRouter:
    api_router = APIRouter()
    api_router.include_router(health.router)
    protected = APIRouter(dependencies=[Depends(authorize)], responses=ERROR_RESPONSES)
    for module in (
        workspaces,
        datasets,
        images,
        captions,
        tasks,
        runs,
        exports,
        trainings,
        cards,
        bulk,
        identity,
    ):
        protected.include_router(module.router)
    protected.include_router(search.router)
    api_router.include_router(protected)
    api_router.include_router(webhooks.router)  # signed by the caller instead of the bearer token
    return api_router
