"""The FastAPI application: builds the app and mounts the routers, nothing else."""

from __future__ import annotations

import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio.to_thread
from fastapi import FastAPI

from loraforge.config import get_settings
from services.api.errors import install_error_handlers
from services.api.guard import RequestGuard
from services.api.routes import build_api_router
from services.api.routes.health import package_version

API_PREFIX = "/api/v1"
OWNS_PROCESS_ENV = "LORAFORGE_API_OWNS_PROCESS"
"""Set by `loraforge serve`: the app owns its process, so its shutdown may stop what its runs started.
(An app inside another process, e.g. a test's client, leaves that process's Prefect server alone.)"""


def create_app() -> FastAPI:
    app = FastAPI(
        title="LoRA Forge",
        version=package_version(),
        openapi_url=f"{API_PREFIX}/openapi.json",
        docs_url=f"{API_PREFIX}/docs",
        lifespan=lifespan,
    )
    install_error_handlers(app)
    app.include_router(build_api_router(), prefix=API_PREFIX)
    app.add_middleware(RequestGuard)  # type: ignore[arg-type]
    return app


@asynccontextmanager
async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
    # Sync routes run in AnyIO's thread pool; its size and the catalog pool are set together (config.py).
    anyio.to_thread.current_default_thread_limiter().total_tokens = get_settings().api_threads
    yield
    if os.environ.get(OWNS_PROCESS_ENV):
        stop_temporary_prefect_server()


def stop_temporary_prefect_server() -> None:
    """Stop the temporary Prefect server that runs in this process started (no Prefect server configured).

    Prefect stops it at exit, but an API worker process that `serve --workers N` started is ended without
    running exit handlers, and the server was left running after `loraforge serve` stopped.
    """
    server_module = sys.modules.get("prefect.server.api.server")
    if server_module is None:
        return
    for server in list(server_module.SubprocessASGIServer._instances.values()):
        server.stop()


app = create_app()
