"""Shared fixtures: a real Postgres database, a real S3 HTTP server, local Ray, and Prefect.

Unit tests use none of them; integration and e2e tests ask for what they need by name.
"""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
os.environ.setdefault("RAY_DEDUP_LOGS", "1")

PG_ADMIN_URL = os.environ.get("LORAFORGE_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")


@dataclass(frozen=True)
class S3Server:
    endpoint: str
    access_key: str = "testing"
    secret_key: str = "testing-secret"


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh database in the machine's Postgres for one test, dropped afterwards."""
    from sqlalchemy import create_engine, text

    name = f"loraforge_test_{uuid.uuid4().hex[:10]}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    yield PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    from loraforge.stages.context import reset_contexts

    reset_contexts()
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    """moto's S3-compatible HTTP server on a free loopback port."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield S3Server(endpoint=f"{host}:{port}")
    server.stop()


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[None]:
    from ray_tasks import ensure_ray

    ensure_ray(num_cpus=2)
    yield
    import ray

    ray.shutdown()


@pytest.fixture(scope="session")
def prefect_harness() -> Iterator[None]:
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture
def embedded_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The embedded defaults (SQLite + local folder) under a fresh LORAFORGE_HOME."""
    home = tmp_path / "home"
    _configure(monkeypatch, {"LORAFORGE_HOME": str(home)})
    return home


@pytest.fixture
def stack_env(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, postgres_url: str, s3_server: S3Server
) -> dict[str, str]:
    """Catalog on Postgres, objects in a fresh bucket of the S3 server."""
    env = {
        "LORAFORGE_HOME": str(tmp_path / "home"),
        "LORAFORGE_CATALOG_URL": postgres_url,
        "LORAFORGE_STORAGE_URL": f"s3://lf-{uuid.uuid4().hex[:12]}",
        "LORAFORGE_S3_ENDPOINT": s3_server.endpoint,
        "LORAFORGE_S3_ACCESS_KEY": s3_server.access_key,
        "LORAFORGE_S3_SECRET_KEY": s3_server.secret_key,
        "LORAFORGE_S3_SECURE": "false",
    }
    _configure(monkeypatch, env)
    return env


def _configure(monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> None:
    from loraforge.config import get_settings
    from loraforge.stages.context import reset_contexts

    for key in list(os.environ):
        if key.startswith("LORAFORGE_") and key != "LORAFORGE_TEST_PG":
            monkeypatch.delenv(key)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    get_settings.cache_clear()
    reset_contexts()


def run_cli(*args: str, env: dict[str, str], timeout: int = 300) -> subprocess.CompletedProcess[str]:
    """Run the installed `loraforge` command as a user would."""
    import shutil
    import sys

    exe = shutil.which("loraforge", path=str(Path(sys.executable).parent)) or "loraforge"
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("LORAFORGE_")} | env
    return subprocess.run([exe, *args], env=full_env, capture_output=True, text=True, timeout=timeout)
