"""URL fetching against a real local HTTP server: redirects, content types, size caps, timeouts."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from loraforge.errors import InvalidInput
from loraforge.sources import SourceLimits
from loraforge.sources.urls import fetch
from tests.support.images import jpeg_bytes

PICTURE = jpeg_bytes(seed=7)


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        routes = {
            "/pic.jpg": (200, "image/jpeg", PICTURE),
            "/page.html": (200, "text/html", b"<html></html>"),
            "/big.jpg": (200, "image/jpeg", b"\xff" * 4096),
            "/missing.jpg": (404, "text/plain", b"no"),
        }
        if self.path.startswith("/redirect/"):
            hops = int(self.path.rsplit("/", 1)[1])
            self.send_response(302)
            self.send_header("Location", f"/redirect/{hops - 1}" if hops > 1 else "/pic.jpg")
            self.end_headers()
            return
        status, content_type, body = routes[self.path]
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def base_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


LIMITS = SourceLimits(
    max_file_bytes=2048,
    max_zip_ratio=100,
    max_zip_total_bytes=10**9,
    url_timeout_s=5,
    url_max_redirects=2,
    allow_private_urls=True,
)


def test_fetches_an_image_through_redirects(base_url: str) -> None:
    big_enough = SourceLimits(**{**LIMITS.__dict__, "max_file_bytes": 10**7})
    assert fetch(f"{base_url}/redirect/2", big_enough) == PICTURE


@pytest.mark.parametrize(
    ("path", "reason"),
    [
        ("/redirect/5", "too many redirects"),
        ("/page.html", "content type"),
        ("/big.jpg", "too large"),
        ("/missing.jpg", "HTTP 404"),
    ],
)
def test_refusals_have_reasons(base_url: str, path: str, reason: str) -> None:
    with pytest.raises(InvalidInput, match=reason):
        fetch(f"{base_url}{path}", LIMITS)


def test_loopback_refused_by_default(base_url: str) -> None:
    with pytest.raises(InvalidInput, match="non-public"):
        fetch(f"{base_url}/pic.jpg", SourceLimits(**{**LIMITS.__dict__, "allow_private_urls": False}))


def test_unreachable_host_is_an_input_error() -> None:
    with pytest.raises(InvalidInput, match="cannot fetch"):
        fetch("http://127.0.0.1:9/x.jpg", LIMITS)
