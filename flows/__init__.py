"""Prefect flows: one per stage and one for the whole pipeline (see flows/deployments.py).

`configure_prefect` lives here, in a module that does not import prefect: Prefect reads its settings once,
when it is first imported, so it must be called before any flow module is imported.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from loraforge.config import Settings


def configure_prefect(settings: Settings) -> None:
    """Point Prefect at the configured server (else ephemeral) before any flow runs."""
    if settings.prefect_api_url:
        os.environ["PREFECT_API_URL"] = settings.prefect_api_url
    # Analytics in the ephemeral server cause "database is locked" errors.
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    # The ephemeral server's 20 s start budget is too tight on a busy 2-core laptop.
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
