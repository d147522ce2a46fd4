"""A real HTTP server that answers S3 requests from a script: 503 SlowDown, 404, a dropped connection...

Each request other than the bucket check takes the next scripted reply; with the script used up, the
server answers as a healthy store would (PUT stores the body, GET returns the last body stored). It
records every request, so a test can count how often a client really asked.
"""

from __future__ import annotations

import socket
import struct
import threading
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

BUCKET = "scripted"


@dataclass(frozen=True)
class Reply:
    status: int
    body: bytes = b""
    content_type: str = "application/xml"
    drop: bool = False
    """Reset the connection instead of answering (a server process dying mid-request)."""


def s3_error(status: int, code: str, message: str = "scripted") -> Reply:
    """An S3 error document, as S3, MinIO and moto send them."""
    xml = (
        '<?xml version="1.0" encoding="UTF-8"?>'
        f"<Error><Code>{code}</Code><Message>{message}</Message>"
        "<Resource>/scripted</Resource><RequestId>req-1</RequestId></Error>"
    )
    return Reply(status, xml.encode())


def html_page(status: int) -> Reply:
    """What a proxy or load balancer in front of the store sends: not an S3 document."""
    return Reply(status, f"<html><body>{status} from the proxy</body></html>".encode(), "text/html")


def dropped() -> Reply:
    return Reply(0, drop=True)


def list_page(keys: list[str], *, truncated: bool) -> Reply:
    """A ListObjectsV2 reply holding `keys`."""
    contents = "".join(
        f"<Contents><Key>{key}</Key><LastModified>2024-01-01T00:00:00.000Z</LastModified>"
        f'<ETag>"e"</ETag><Size>1</Size><StorageClass>STANDARD</StorageClass></Contents>'
        for key in keys
    )
    token = "<NextContinuationToken>next</NextContinuationToken>" if truncated else ""
    xml = (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
        f"<Name>{BUCKET}</Name><Prefix></Prefix><KeyCount>{len(keys)}</KeyCount><MaxKeys>1000</MaxKeys>"
        f"<IsTruncated>{'true' if truncated else 'false'}</IsTruncated>{token}{contents}</ListBucketResult>"
    )
    return Reply(200, xml.encode())


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    body: bytes


@dataclass
class ScriptedS3:
    endpoint: str
    script: deque[Reply] = field(default_factory=deque)
    requests: list[Request] = field(default_factory=list)
    stored: bytes = b"stored bytes"

    def then(self, *replies: Reply) -> ScriptedS3:
        self.script.extend(replies)
        return self

    def object_requests(self) -> list[Request]:
        """Every request but the client's bucket checks."""
        return [r for r in self.requests if not _is_bucket_check(r.method, r.path)]


def _is_bucket_check(method: str, path: str) -> bool:
    return method == "HEAD" and path.strip("/") == BUCKET


@contextmanager
def scripted_s3() -> Iterator[ScriptedS3]:
    """Serve on a free loopback port for the duration of the block."""
    state = ScriptedS3(endpoint="")
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the base's name
            return None

        def _handle(self) -> None:
            parts = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            with lock:
                state.requests.append(Request(self.command, parts.path, parse_qs(parts.query), body))
                bucket_check = _is_bucket_check(self.command, parts.path)
                reply = None if bucket_check or not state.script else state.script.popleft()
            if reply is None:
                reply = self._healthy(bucket_check, body)
            if reply.drop:
                # SO_LINGER 0: close with a reset, as a killed server's kernel does.
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                self.close_connection = True
                self.connection.close()
                return
            self.send_response(reply.status)
            self.send_header("Content-Type", reply.content_type)
            self.send_header("Content-Length", str(len(reply.body)))
            self.send_header("ETag", '"etag-1"')
            self.send_header("Last-Modified", "Mon, 01 Jan 2024 00:00:00 GMT")
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(reply.body)

        def _healthy(self, bucket_check: bool, body: bytes) -> Reply:
            if bucket_check or self.command in ("HEAD", "DELETE"):
                return Reply(200, content_type="application/octet-stream")
            if self.command == "PUT":
                state.stored = body
                return Reply(200, content_type="application/octet-stream")
            return Reply(200, state.stored, "application/octet-stream")

        do_GET = do_PUT = do_HEAD = do_DELETE = do_POST = _handle  # noqa: N815 - http.server's names

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    state.endpoint = f"127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), name="scripted-s3", daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
