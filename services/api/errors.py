"""One error format for every failure, {"error": {"code", "message"}}, mapped from loraforge.errors."""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import IntegrityError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from loraforge.errors import (
    CatalogBusy,
    CatalogError,
    ConfigError,
    Conflict,
    Forbidden,
    InvalidInput,
    LoraForgeError,
    NotFound,
    StorageError,
)

log = logging.getLogger(__name__)

# Most specific first: the first class an exception is an instance of decides its status and code.
ERROR_STATUS: tuple[tuple[type[LoraForgeError], int, str], ...] = (
    (NotFound, 404, "not_found"),
    (Conflict, 409, "conflict"),
    (Forbidden, 403, "forbidden"),
    (InvalidInput, 422, "invalid_input"),
    (CatalogBusy, 503, "busy"),
    (ConfigError, 503, "config_error"),
    (CatalogError, 503, "catalog_unavailable"),
    (StorageError, 503, "storage_unavailable"),
)


def error_response(
    status: int,
    code: str,
    message: str,
    *,
    details: list[dict[str, Any]] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body: dict[str, Any] = {"code": code, "message": message}
    if details is not None:
        body["details"] = jsonable_encoder(details)
    return JSONResponse({"error": body}, status_code=status, headers=headers)


def _status_code_name(status: int) -> str:
    try:
        return HTTPStatus(status).phrase.lower().replace(" ", "_").replace("-", "_")
    except ValueError:
        return "error"


RETRY_AFTER_S = "2"
"""What a 503 tells the client to wait: the catalog or store is busy or away, not broken."""


async def handle_loraforge_error(_request: Request, exc: Exception) -> JSONResponse:
    for error_class, status, code in ERROR_STATUS:
        if isinstance(exc, error_class):
            if status >= 500:
                log.warning("%s: %s", code, exc)
            headers = {"Retry-After": RETRY_AFTER_S} if status == 503 else None
            return error_response(status, code, str(exc), headers=headers)
    log.error("unexpected LoRA Forge error", exc_info=exc)
    return error_response(500, "internal_error", "internal error")


async def handle_pool_timeout(_request: Request, _exc: Exception) -> JSONResponse:
    # A connection checked out outside Catalog.session() (e.g. by a dependency) timed out the same way.
    return error_response(
        503,
        "busy",
        "the catalog is busy: no free connection; try again shortly",
        headers={"Retry-After": RETRY_AFTER_S},
    )


async def handle_unexpected(_request: Request, exc: Exception) -> JSONResponse:
    """The last resort: log the bug with its traceback, tell the client nothing about the internals."""
    log.error("unhandled error", exc_info=exc)
    return error_response(500, "internal_error", "internal error")


async def handle_validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = [
        {"loc": list(error.get("loc", ())), "msg": error.get("msg", ""), "type": error.get("type", "")}
        for error in exc.errors()
    ]
    message = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in errors)
    return error_response(422, "invalid_input", message or "invalid request", details=errors)


async def handle_http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    headers = dict(getattr(exc, "headers", None) or {})
    if exc.status_code == 405:
        # Starlette names only the methods of the first route matching the path; list them all.
        headers["Allow"] = ", ".join(allowed_methods(request))
    return error_response(
        exc.status_code, _status_code_name(exc.status_code), str(exc.detail), headers=headers
    )


def allowed_methods(request: Request) -> list[str]:
    methods: set[str] = set()
    for route in request.app.router.routes:
        match, _ = route.matches({**request.scope, "method": "GET"})
        if match != Match.NONE:
            methods |= set(getattr(route, "methods", None) or ())
    if "GET" in methods:
        methods.add("HEAD")
    return sorted(methods)


async def handle_integrity_error(_request: Request, exc: Exception) -> JSONResponse:
    # A unique constraint raced past our explicit check (two requests creating the same name).
    return error_response(409, "conflict", f"conflicts with existing data: {str(exc.__cause__ or exc)[:200]}")


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(LoraForgeError, handle_loraforge_error)
    app.add_exception_handler(RequestValidationError, handle_validation_error)
    app.add_exception_handler(StarletteHTTPException, handle_http_error)
    app.add_exception_handler(IntegrityError, handle_integrity_error)
    app.add_exception_handler(PoolTimeout, handle_pool_timeout)
    app.add_exception_handler(Exception, handle_unexpected)
