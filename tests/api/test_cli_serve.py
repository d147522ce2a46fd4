"""`loraforge serve` answers on the port it was given; `loraforge worker` builds one deployment per flow."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from flows.deployments import DEPLOYMENT_NAME
from services.cli.serve import worker_deployments


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_serve_command_runs_the_api(stack_env: dict[str, str]) -> None:
    port = free_port()
    exe = shutil.which("loraforge", path=str(Path(sys.executable).parent)) or "loraforge"
    env = {k: v for k, v in os.environ.items() if not k.startswith("LORAFORGE_")} | stack_env
    env["LORAFORGE_API_TOKEN"] = "cli-token"
    process = subprocess.Popen(
        [exe, "serve", "--port", str(port)], env=env, stderr=subprocess.PIPE, text=True
    )
    try:
        health = None
        for _ in range(240):  # the bound only stops a hung test; start-up is a few seconds
            try:
                health = httpx.get(f"http://127.0.0.1:{port}/api/v1/health", timeout=2)
                break
            except httpx.TransportError:
                assert process.poll() is None, process.stderr.read() if process.stderr else ""
                time.sleep(0.5)
        assert health is not None and health.json()["status"] == "ok"
        denied = httpx.get(f"http://127.0.0.1:{port}/api/v1/workspaces", timeout=5)
        assert denied.status_code == 401
        allowed = httpx.get(
            f"http://127.0.0.1:{port}/api/v1/workspaces",
            headers={"Authorization": "Bearer cli-token"},
            timeout=5,
        )
        assert allowed.json() == {"data": [], "count": 0}
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_worker_serves_every_importable_flow_under_one_deployment_name() -> None:
    deployments = worker_deployments()
    assert {d.name for d in deployments} == {DEPLOYMENT_NAME}
    assert "ingest" in {d.flow_name for d in deployments}


def _wait_healthy(port: int, process: subprocess.Popen[str]) -> None:
    for _ in range(240):
        try:
            if httpx.get(f"http://127.0.0.1:{port}/api/v1/health", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        assert process.poll() is None, process.stderr.read() if process.stderr else ""
        time.sleep(0.5)
    raise AssertionError("the API never answered")


def test_sigterm_stops_serve_and_every_process_its_runs_started(tmp_path: Path) -> None:
    """A run started through the API spawns Prefect's temporary server; SIGTERM must take it down too."""
    import psutil

    port = free_port()
    exe = shutil.which("loraforge", path=str(Path(sys.executable).parent)) or "loraforge"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LORAFORGE_", "PREFECT_API"))}
    env |= {"LORAFORGE_HOME": str(tmp_path / "home"), "LORAFORGE_EXECUTOR": "inline"}
    process = subprocess.Popen(
        [exe, "serve", "--port", str(port), "--workers", "2"], env=env, stderr=subprocess.PIPE, text=True
    )
    api = f"http://127.0.0.1:{port}/api/v1"
    try:
        _wait_healthy(port, process)
        assert len(psutil.Process(process.pid).children()) >= 2  # the worker processes
        workspace = httpx.post(f"{api}/workspaces", json={"name": "w"}, timeout=10).json()
        dataset = httpx.post(
            f"{api}/workspaces/{workspace['id']}/datasets", json={"name": "d"}, timeout=10
        ).json()
        started = httpx.post(f"{api}/datasets/{dataset['id']}/runs/curate", json={}, timeout=30)
        assert started.status_code == 202, started.text
        task_id = started.json()["task_id"]
        for _ in range(240):
            status = httpx.get(f"{api}/tasks/{task_id}", timeout=10).json()["status"]
            if status not in ("PENDING", "RUNNING"):
                break
            time.sleep(0.5)
        assert status == "COMPLETED"
        spawned = psutil.Process(process.pid).children(recursive=True)
        assert len(spawned) >= 3  # two API workers and at least Prefect's server under one of them

        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)

        gone, alive = psutil.wait_procs(spawned, timeout=10)
        assert alive == [], [proc.cmdline() for proc in alive]
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
