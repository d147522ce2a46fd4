"""`loraforge ui` is the Streamlit server itself, so a SIGTERM (Kubernetes, systemd, Ctrl-C in a script)
stops the dashboard rather than leaving an orphan Streamlit behind."""

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
import psutil


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_sigterm_stops_the_dashboard_server(tmp_path: Path) -> None:
    port = free_port()
    exe = shutil.which("loraforge", path=str(Path(sys.executable).parent)) or "loraforge"
    env = {**os.environ, "LORAFORGE_API_URL": "http://127.0.0.1:9"}
    process = subprocess.Popen(
        [exe, "ui", "--port", str(port)],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        for _ in range(240):  # Streamlit takes a few seconds to start on a busy machine
            try:
                if httpx.get(f"http://127.0.0.1:{port}/_stcore/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.25)
        else:
            raise AssertionError("the dashboard did not start")
        children = psutil.Process(process.pid).children(recursive=True)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) is not None
        time.sleep(0.5)
        assert not [child for child in children if child.is_running() and child.status() != "zombie"]
        with socket.socket() as sock:  # nothing listens on the port any more
            assert sock.connect_ex(("127.0.0.1", port)) != 0
    finally:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
