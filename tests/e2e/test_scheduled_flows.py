"""`loraforge worker` against a real `prefect server start`: a short interval schedule produces completed
flow runs, and the scheduled reaper does its job on the catalog.

Prefect 3.8's scheduler created no run at all with SQLAlchemy 2.1 ("Can't evaluate bulk DML statement");
pyproject.toml bounds it below 2.1, and this test is what shows schedules work.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from tests.support.prefect_server import PrefectServer


@pytest.fixture
def prefect_server() -> Iterator[PrefectServer]:
    with PrefectServer() as server:
        yield server


def _flow_runs(server: PrefectServer, deployment: str) -> list[dict[str, object]]:
    flow_name, name = deployment.split("/")
    found = httpx.get(f"{server.api_url}/deployments/name/{flow_name}/{name}", timeout=10)
    if found.status_code == 404:
        return []
    found.raise_for_status()
    runs = httpx.post(
        f"{server.api_url}/flow_runs/filter",
        json={"deployments": {"id": {"any_": [found.json()["id"]]}}},
        timeout=10,
    )
    runs.raise_for_status()
    return list(runs.json())


def _stale_task(postgres_url: str) -> str:
    """A RUNNING task whose heartbeat stopped ten minutes ago, owned by a process of another host."""
    from loraforge.catalog import Catalog
    from loraforge.catalog.models import Task
    from loraforge.stages.datasets import ensure_dataset
    from loraforge.tasks import TaskStatus, now

    catalog = Catalog(postgres_url)
    with catalog.session() as session:
        dataset = ensure_dataset(session, "scheduled")
        task = Task(
            dataset_id=dataset.id,
            kind="ingest",
            status=TaskStatus.RUNNING,
            started_at=now() - timedelta(minutes=10),
            heartbeat_at=now() - timedelta(minutes=10),
            owner="another-host:1",
        )
        session.add(task)
        session.flush()
        task_id = task.id
    catalog.dispose()
    return task_id


def _task_status(postgres_url: str, task_id: str) -> str:
    from loraforge.catalog import Catalog
    from loraforge.catalog.models import Task

    catalog = Catalog(postgres_url)
    try:
        with catalog.session() as session:
            task = session.get(Task, task_id)
            assert task is not None
            return task.status
    finally:
        catalog.dispose()


def test_worker_runs_the_reaper_on_its_interval_schedule(
    prefect_server: PrefectServer, postgres_url: str, tmp_path: Path
) -> None:
    task_id = _stale_task(postgres_url)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LORAFORGE_", "PREFECT_"))}
    env |= prefect_server.client_env | {
        "LORAFORGE_HOME": str(tmp_path / "home"),
        "LORAFORGE_CATALOG_URL": postgres_url,
        "LORAFORGE_PREFECT_API_URL": prefect_server.api_url,
        "LORAFORGE_EXECUTOR": "inline",
        "LORAFORGE_SCHEDULE_REAP_TASKS": "5",
        "LORAFORGE_SCHEDULE_SYNC_SOURCES": "off",
        "LORAFORGE_SCHEDULE_SYNC_TRAININGS": "off",
        "LORAFORGE_SCHEDULE_CHECK_INTEGRITY": "off",
        "PREFECT_RUNNER_POLL_FREQUENCY": "2",
    }
    exe = shutil.which("loraforge", path=str(Path(sys.executable).parent)) or "loraforge"
    log_path = tmp_path / "worker.log"
    with open(log_path, "wb") as log:
        worker = subprocess.Popen(
            [exe, "worker"], env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        deadline = time.monotonic() + 240
        completed: list[dict[str, object]] = []
        while time.monotonic() < deadline and worker.poll() is None:
            runs = _flow_runs(prefect_server, "reap-stale-tasks/loraforge")
            completed = [run for run in runs if run["state_type"] == "COMPLETED"]
            if len(completed) >= 2:
                break
            time.sleep(2)
        assert worker.poll() is None, log_path.read_text(errors="replace")[-3000:]
        assert len(completed) >= 2, (
            [run["state_type"] for run in _flow_runs(prefect_server, "reap-stale-tasks/loraforge")],
            log_path.read_text(errors="replace")[-3000:],
            prefect_server.log_tail(),
        )
        # Scheduled by the server, not started by hand.
        assert all(run["auto_scheduled"] for run in completed)
        assert _task_status(postgres_url, task_id) == "CRASHED"
        # A schedule set to "off" is served but never run.
        assert _flow_runs(prefect_server, "check-integrity/loraforge") == []
    finally:
        _stop(worker)


def _stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the worker's process group (it and its flow-run processes), SIGKILL after 30 s."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
