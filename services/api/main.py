"""The FastAPI application: builds the app and mounts the routers, nothing else."""

from __future__ import annotations

from fastapi import FastAPI

from services.api.errors import install_error_handlers
from services.api.routes import build_api_router
from services.api.routes.health import package_version

API_PREFIX = "/api/v1"


def create_app() -> FastAPI:
    app = FastAPI(
        title="LoRA Forge",
        version=package_version(),
        openapi_url=f"{API_PREFIX}/openapi.json",
        docs_url=f"{API_PREFIX}/docs",
    )
    install_error_handlers(app)
    app.include_router(build_api_router(), prefix=API_PREFIX)
    return app


app = create_app()
