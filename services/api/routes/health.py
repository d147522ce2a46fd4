"""GET /health: is the catalog reachable, is the object store reachable, which version runs."""

from __future__ import annotations

import logging
from importlib.metadata import PackageNotFoundError, version

from fastapi import APIRouter, Response
from sqlalchemy import text

from services.api.deps import ContextDep, ReleasingRoute, StoreDep
from services.api.schemas import HealthPublic

log = logging.getLogger(__name__)
router = APIRouter(route_class=ReleasingRoute, tags=["health"])
PROBE_KEY = "health/probe"


def package_version() -> str:
    try:
        return version("loraforge")
    except PackageNotFoundError:
        return "unknown"


@router.get("/health", response_model=HealthPublic, responses={503: {"model": HealthPublic}})
def read_health(ctx: ContextDep, store: StoreDep, response: Response) -> HealthPublic:
    catalog_ok = storage_ok = True
    try:
        with ctx.catalog.session() as session:
            session.execute(text("SELECT 1"))
    except Exception as exc:  # noqa: BLE001 - any failure means "not reachable"
        log.warning("health: catalog unreachable: %s", exc)
        catalog_ok = False
    try:
        store.exists(PROBE_KEY)
    except Exception as exc:  # noqa: BLE001
        log.warning("health: object store unreachable: %s", exc)
        storage_ok = False
    healthy = catalog_ok and storage_ok
    if not healthy:
        response.status_code = 503
    return HealthPublic(
        status="ok" if healthy else "degraded",
        version=package_version(),
        catalog=catalog_ok,
        storage=storage_ok,
    )
