"""What the API refuses before reading a body, and how it answers when the catalog is out of connections.

The upload tests talk raw HTTP to a real `uvicorn` on loopback: they send the headers and only part of
the body, and show the answer comes back without the server waiting for (or storing) the rest.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest
import uvicorn
from fastapi.testclient import TestClient

from loraforge.config import get_settings
from loraforge.stages.context import Context, open_context, reset_contexts
from services.api.guard import json_depth

API = "/api/v1"
TOKEN = "guard-test-token"


@pytest.fixture
def server(ctx: Context, monkeypatch: pytest.MonkeyPatch) -> Iterator[int]:
    """The API under uvicorn on a free port, with a token and a 1000-byte file cap."""
    from services.api.main import create_app

    monkeypatch.setenv("LORAFORGE_API_TOKEN", TOKEN)
    monkeypatch.setenv("LORAFORGE_MAX_FILE_BYTES", "1000")
    monkeypatch.setenv("LORAFORGE_MAX_REQUEST_BYTES", "100000")
    get_settings.cache_clear()
    config = uvicorn.Config(create_app(), host="127.0.0.1", port=0, log_level="warning")
    uv = uvicorn.Server(config)
    thread = threading.Thread(target=uv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not uv.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert uv.started
    port = uv.servers[0].sockets[0].getsockname()[1]
    yield port
    uv.should_exit = True
    thread.join(timeout=10)


def _raw(port: int, head: bytes, body_part: bytes = b"") -> bytes:
    """Send a request head and part of a body, then read whatever the server answers (5 s at most)."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(head + body_part)
        received = b""
        try:
            while b"\r\n\r\n" not in received or not received.rstrip().endswith(b"}"):
                chunk = sock.recv(65536)
                if not chunk:
                    break
                received += chunk
        except TimeoutError:
            pass
        return received


def _upload_head(port: int, dataset_id: str, length: int, *, token: str | None) -> bytes:
    auth = f"Authorization: Bearer {token}\r\n" if token else ""
    return (
        f"POST {API}/datasets/{dataset_id}/images HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{auth}"
        f"Content-Type: multipart/form-data; boundary=XyZ\r\nContent-Length: {length}\r\n\r\n"
    ).encode()


def test_an_upload_without_the_token_is_refused_before_its_body_is_read(server: int) -> None:
    head = _upload_head(server, "any", 600 * 1024 * 1024, token=None)
    started = time.monotonic()

    answer = _raw(server, head)  # not one byte of the 600 MB body is sent

    assert answer.startswith(b"HTTP/1.1 401"), answer[:200]
    assert b"missing or wrong bearer token" in answer
    assert time.monotonic() - started < 3


def test_a_declared_oversized_request_is_refused_at_once(server: int) -> None:
    answer = _raw(server, _upload_head(server, "any", 10**9, token=TOKEN))
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]


def test_a_file_over_the_cap_is_refused_while_it_streams(server: int, ctx: Context) -> None:
    from tests.api.factories import make_dataset, make_workspace

    with ctx.catalog.session() as session:
        dataset = make_dataset(session, make_workspace(session))
    part = b'--XyZ\r\nContent-Disposition: form-data; name="files"; filename="big.jpg"\r\n'
    part += b"Content-Type: image/jpeg\r\n\r\n" + b"\xff" * 3000
    # Declares 90 kB but sends 3 kB of one file: the answer must not wait for the rest.
    answer = _raw(server, _upload_head(server, dataset.id, 90_000, token=TOKEN), part)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:300]
    assert b"a file is over 1000 bytes" in answer
    assert list(ctx.store.list(f"uploads/{dataset.id}/")) == []


def test_deeply_nested_or_oversized_json_is_refused(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    nested = '{"name": "deep", "settings": ' + '{"a": ' * 900 + "1" + "}" * 900 + "}"
    answer = client.post(f"{API}/workspaces", content=nested, headers={"Content-Type": "application/json"})
    assert answer.status_code == 422 and "nested deeper" in answer.json()["error"]["message"]

    monkeypatch.setenv("LORAFORGE_MAX_JSON_BYTES", "100")
    get_settings.cache_clear()
    big = '{"name": "' + "x" * 200 + '"}'
    answer = client.post(f"{API}/workspaces", content=big, headers={"Content-Type": "application/json"})
    assert answer.status_code == 413


def test_json_depth_skips_brackets_inside_strings() -> None:
    assert json_depth(b'{"a": "[[[[{{{{", "b": [1, [2]]}') == 3
    assert json_depth(b'"\\"[[[["') == 0
    assert json_depth(b"[]") == 1


def test_no_free_catalog_connection_is_a_503_with_retry_after(
    stack_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from services.api.main import create_app

    monkeypatch.setenv("LORAFORGE_CATALOG_POOL_SIZE", "1")
    monkeypatch.setenv("LORAFORGE_CATALOG_MAX_OVERFLOW", "0")
    monkeypatch.setenv("LORAFORGE_CATALOG_POOL_TIMEOUT_S", "0.5")
    get_settings.cache_clear()
    reset_contexts()
    ctx = open_context()
    ctx.catalog.ensure_schema()
    with TestClient(create_app()) as client:
        assert client.get(f"{API}/workspaces").status_code == 200
        held = ctx.catalog.engine.connect()  # the pool's only connection
        try:
            answer = client.get(f"{API}/workspaces")
        finally:
            held.close()
        assert answer.status_code == 503
        assert answer.headers["retry-after"] == "2"
        assert answer.json()["error"]["code"] == "busy"
        assert client.get(f"{API}/workspaces").status_code == 200
