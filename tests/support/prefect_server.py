"""A real `prefect server start` on a free loopback port, with its own PREFECT_HOME and SQLite database.

    with PrefectServer() as server:       # healthy in about 5-10 s on the 2-core CI machine
        env = server.client_env           # PREFECT_API_URL for a process that should use it
        ...

It runs the scheduler and every other service a deployed Prefect runs, which `prefect_test_harness`
(an in-process test server) does not. Stopped with SIGTERM, then SIGKILL, by process group.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType

import httpx


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PrefectServerError(RuntimeError):
    pass


class PrefectServer:
    def __init__(self, *, start_timeout_s: float = 120.0, scheduler_loop_s: float = 2.0) -> None:
        self.start_timeout_s = start_timeout_s
        self.scheduler_loop_s = scheduler_loop_s
        self.port = 0
        self.home = Path()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api"

    @property
    def client_env(self) -> dict[str, str]:
        """What a client process needs to talk to this server (and nothing of the server's own home)."""
        return {"PREFECT_API_URL": self.api_url, "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}

    def __enter__(self) -> PrefectServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def start(self) -> PrefectServer:
        self.port = _free_port()
        self.home = Path(tempfile.mkdtemp(prefix="lf-prefect-"))
        env = {key: value for key, value in os.environ.items() if not key.startswith("PREFECT_")}
        env |= {
            "PREFECT_HOME": str(self.home),
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "PREFECT_UI_ENABLED": "false",
            # Look for due schedules every couple of seconds instead of every 60 s.
            "PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS": str(self.scheduler_loop_s),
            "PREFECT_SERVER_SERVICES_SCHEDULER_MIN_SCHEDULED_TIME": "0:00:05",
        }
        prefect = Path(sys.executable).with_name("prefect")
        log = open(self.home / "server.log", "wb")  # noqa: SIM115 - kept open for the server's lifetime
        self.process = subprocess.Popen(
            [str(prefect), "server", "start", "--host", "127.0.0.1", "--port", str(self.port)],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + self.start_timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise PrefectServerError(f"prefect server exited early:\n{self.log_tail()}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.api_url}/health", timeout=2).status_code == 200:
                    return self
            time.sleep(0.5)
        self.stop()
        raise PrefectServerError(f"prefect server not healthy in {self.start_timeout_s:.0f} s")

    def log_tail(self, chars: int = 4000) -> str:
        try:
            return (self.home / "server.log").read_text(errors="replace")[-chars:]
        except OSError:
            return "(no log)"

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self.process = None
        if self.home != Path():
            shutil.rmtree(self.home, ignore_errors=True)
