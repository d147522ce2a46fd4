"""UI test fixtures: the real API served by uvicorn in a background thread, over the `stack_env` stack."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def serving_api(port: int) -> Iterator[str]:
    """The API on a loopback port in a thread of this process, until the block ends."""
    import uvicorn

    from services.api.main import create_app

    server = uvicorn.Server(uvicorn.Config(create_app(), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, name="api-under-test", daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    for _ in range(200):  # the bound only stops a hung test
        if server.started:
            break
        time.sleep(0.05)
    assert httpx.get(f"{url}/api/v1/health", timeout=10).json()["status"] == "ok"
    try:
        yield url
    finally:
        server.should_exit = True
        thread.join(timeout=30)


@pytest.fixture
def api_url(stack_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Base URL of a live API on a free loopback port; the dashboard finds it via LORAFORGE_API_URL."""
    with serving_api(free_port()) as url:
        monkeypatch.setenv("LORAFORGE_API_URL", url)
        yield url
