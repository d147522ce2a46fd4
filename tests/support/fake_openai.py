"""A real HTTP server on 127.0.0.1 that speaks the OpenAI chat-completions API for vision captioning tests."""

from __future__ import annotations

import base64
import io
import json
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from PIL import Image

DATA_URI_PREFIX = "data:image/"


@dataclass
class ReceivedRequest:
    """What the server saw in one chat-completions call."""

    model: str
    prompt: str
    image_size: tuple[int, int] | None
    authorization: str | None


def default_caption(image: Image.Image) -> str:
    """A caption that names the picture's size, so tests can check that answers keep input order."""
    return f"a test picture {image.width} by {image.height}"


@dataclass
class FakeOpenAI:
    """Behaviour knobs: `statuses` are answered (in order) before normal service resumes; `reject` marks
    pictures the server refuses with HTTP 400; `api_key`, when set, is required as a bearer token."""

    caption: Callable[[Image.Image], str] = default_caption
    reject: Callable[[Image.Image], bool] = lambda image: False
    statuses: list[int] = field(default_factory=list)
    api_key: str | None = None
    raw_body: str | None = None
    requests: list[ReceivedRequest] = field(default_factory=list)
    port: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def next_forced_status(self) -> int | None:
        with self._lock:
            return self.statuses.pop(0) if self.statuses else None

    def record(self, request: ReceivedRequest) -> None:
        with self._lock:
            self.requests.append(request)


def _handler(fake: FakeOpenAI) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - keep test output quiet
            pass

        def _reply(self, status: int, body: object | str) -> None:
            data = (body if isinstance(body, str) else json.dumps(body)).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _authorised(self) -> bool:
            if fake.api_key is None or self.headers.get("Authorization") == f"Bearer {fake.api_key}":
                return True
            self._reply(401, {"error": {"message": "invalid api key", "type": "invalid_request_error"}})
            return False

        def do_GET(self) -> None:  # noqa: N802 - http.server naming
            if self.path.rstrip("/") == "/v1/models" and self._authorised():
                self._reply(200, {"object": "list", "data": [{"id": "fake-vision", "object": "model"}]})
            elif self.path.rstrip("/") != "/v1/models":
                self._reply(404, {"error": {"message": "not found"}})

        def do_POST(self) -> None:  # noqa: N802 - http.server naming
            length = int(self.headers.get("Content-Length", "0"))
            payload = json.loads(self.rfile.read(length) or b"{}")
            if self.path.rstrip("/") != "/v1/chat/completions":
                self._reply(404, {"error": {"message": "not found"}})
                return
            if not self._authorised():
                return
            prompt, image = _parse_message(payload)
            fake.record(
                ReceivedRequest(
                    model=str(payload.get("model")),
                    prompt=prompt,
                    image_size=image.size if image is not None else None,
                    authorization=self.headers.get("Authorization"),
                )
            )
            forced = fake.next_forced_status()
            if forced is not None:
                self._reply(forced, {"error": {"message": f"forced status {forced}"}})
            elif image is None or fake.reject(image):
                self._reply(400, {"error": {"message": "invalid image", "code": "invalid_image"}})
            elif fake.raw_body is not None:
                self._reply(200, fake.raw_body)
            else:
                message = {"role": "assistant", "content": fake.caption(image)}
                self._reply(200, {"id": "chatcmpl-1", "choices": [{"index": 0, "message": message}]})

    return Handler


def _parse_message(payload: dict[str, Any]) -> tuple[str, Image.Image | None]:
    """The text prompt and the decoded picture of the first user message; None if it does not decode."""
    prompt, image = "", None
    for message in payload.get("messages", []):
        content = message.get("content")
        for part in content if isinstance(content, list) else []:
            if part.get("type") == "text":
                prompt = part.get("text", "")
            elif part.get("type") == "image_url":
                image = _decode_data_uri(part.get("image_url", {}).get("url", ""))
    return prompt, image


def _decode_data_uri(uri: str) -> Image.Image | None:
    if not uri.startswith(DATA_URI_PREFIX) or ";base64," not in uri:
        return None
    try:
        image = Image.open(io.BytesIO(base64.b64decode(uri.split(";base64,", 1)[1], validate=True)))
        image.load()
        return image
    except Exception:
        return None


@contextmanager
def running_fake_openai(fake: FakeOpenAI | None = None) -> Iterator[FakeOpenAI]:
    """Serve `fake` on a free loopback port for the duration of the block."""
    fake = fake or FakeOpenAI()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(fake))
    fake.port = server.server_address[1]
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="fake-openai", daemon=True
    )
    thread.start()
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def closed_port() -> int:
    """A loopback port with nothing listening on it (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
