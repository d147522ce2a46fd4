"""`loraforge serve`, `ui` and `worker`: start the API, the dashboard, or a Prefect worker for the flows."""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import os
import sys
from pathlib import Path
from typing import Any

import typer

from flows.deployments import DEPLOYMENTS, REQUESTED, SCHEDULED, to_deployments
from loraforge.config import get_settings
from loraforge.errors import ConfigError
from services.cli.main import app, err_console, handle_errors

log = logging.getLogger(__name__)
API_APP = "services.api.main:app"
WORKER_HELP = (
    "Serve every pipeline flow (and the API's search-add) as a Prefect deployment, and the maintenance"
    " flows on their schedules (LORAFORGE_SCHEDULE_*: seconds, cron or off). Deployments: "
    + ", ".join(d.deployment_name for d in (*DEPLOYMENTS, *REQUESTED, *SCHEDULED))
    + "."
)


@app.command()
@handle_errors
def serve(
    host: str = typer.Option("127.0.0.1", "--host", help="Interface to listen on (0.0.0.0 for all)."),
    port: int = typer.Option(8000, "--port", min=1, max=65535),
    workers: int = typer.Option(1, "--workers", min=1, max=64, help="API processes sharing the port."),
) -> None:
    """Run the REST API (FastAPI under uvicorn) on /api/v1."""
    import uvicorn

    from flows import configure_prefect

    settings = get_settings()  # fail now, naming the variable, rather than on the first request
    configure_prefect(settings)
    if host not in ("127.0.0.1", "localhost", "::1") and not settings.api_token:
        err_console.print("[yellow]warning:[/yellow] serving beyond localhost without LORAFORGE_API_TOKEN")
    # services/api/main.py OWNS_PROCESS_ENV (named, not imported: the CLI only starts the API process).
    # Inherited by the worker processes: their shutdown then stops what their runs started.
    os.environ["LORAFORGE_API_OWNS_PROCESS"] = "1"
    try:
        uvicorn.run(API_APP, host=host, port=port, log_level="info", workers=workers)
    finally:
        # uvicorn returns after SIGTERM/SIGINT; what runs started in this process spawned (Prefect's
        # temporary server, a local Ray) must not outlive it.
        stop_children()


def stop_children(grace_s: float = 5.0) -> None:
    """Terminate every descendant process of this one, then kill those still alive after `grace_s`."""
    import psutil

    children = psutil.Process().children(recursive=True)
    for child in children:
        with contextlib.suppress(psutil.Error):
            child.terminate()
    _, alive = psutil.wait_procs(children, timeout=grace_s)
    for child in alive:
        with contextlib.suppress(psutil.Error):
            child.kill()


@app.command()
@handle_errors
def ui(
    port: int = typer.Option(8501, "--port", min=1, max=65535),
    api_url: str = typer.Option(None, "--api-url", help="The API to talk to; default LORAFORGE_API_URL."),
) -> None:
    """Run the Streamlit dashboard (headless); it reaches the data only through the API."""
    env = dict(os.environ)
    if api_url:
        env["LORAFORGE_API_URL"] = api_url
    command = [sys.executable, "-m", "streamlit", "run", str(dashboard_script())]
    command += [
        "--server.headless",
        "true",
        "--server.port",
        str(port),
        "--browser.gatherUsageStats",
        "false",
    ]
    os.execve(sys.executable, command, env)  # become Streamlit: SIGTERM reaches the server itself


def dashboard_script() -> Path:
    spec = importlib.util.find_spec("services.ui")
    if spec is None or spec.origin is None:
        raise ConfigError("the dashboard (services.ui) is not installed")
    return Path(spec.origin).parent / "app.py"


@app.command(help=WORKER_HELP)
@handle_errors
def worker(
    limit: int = typer.Option(None, "--limit", min=1, help="Flow runs this worker executes at once."),
) -> None:
    """Serve every pipeline flow as a Prefect deployment and run what is scheduled."""
    from flows import configure_prefect

    configure_prefect(get_settings())  # before prefect is imported: it reads its environment once
    from prefect import serve as prefect_serve

    deployments = worker_deployments()
    if not deployments:
        raise ConfigError("no flows could be imported; is the flows package installed?")
    names = ", ".join(d.name for d in deployments)
    err_console.print(f"serving {len(deployments)} deployment(s): {names}", highlight=False)
    prefect_serve(*deployments, limit=limit)


def worker_deployments() -> list[Any]:
    """One deployment per importable stage flow (the registry's); missing ones are logged and skipped."""
    return to_deployments()
