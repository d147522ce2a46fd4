"""The HTTP pieces every outbound download shares: checked addresses, a pinned connection, a deadline,
and a bounded body.

- `parse_url` and `checked_addresses` refuse what is not http(s) and, unless allowed, hosts with any
  non-public address (url_safety).
- `PinnedBackend` is an httpcore network backend that connects only to the addresses checked for one
  host, whatever the host name resolves to later; the URL is untouched, so the Host header, TLS SNI and
  certificate checks are for the name the user gave. (httpx's own transport takes no network backend,
  which is why httpcore is used directly.) Every connect, TLS handshake, read and write it makes ends by
  one wall-clock deadline, so a server dripping a byte a second cannot keep a download alive.
- `read_image_body` reads a raw body and decodes it a bounded piece at a time (`BoundedDecoder`), so a
  gzip bomb stops at the size cap instead of being inflated first.

Users: sources/urls.py (fetch a picture by URL) and sources/search/http.py (image-search providers).
"""

from __future__ import annotations

import functools
import ssl
import time
import zlib
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

import httpcore
import httpx

from loraforge.errors import InvalidInput
from loraforge.sources.url_safety import IPAddress, Resolver, resolve_checked

_T = TypeVar("_T")


def parse_url(url: str) -> httpx.URL:
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL as exc:
        raise InvalidInput(f"invalid URL {url!r}: {exc}") from exc
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise InvalidInput(f"unsupported URL {url!r}: only http(s) URLs are fetched")
    return parsed


def checked_addresses(target: httpx.URL, allow_private: bool, resolver: Resolver) -> list[IPAddress]:
    port = target.port or (443 if target.scheme == "https" else 80)
    host = target.raw_host.decode("ascii")  # IDNA-encoded, as the resolver and the certificate know it
    return resolve_checked(host, port, allow_private=allow_private, resolver=resolver)


@functools.cache
def default_ssl_context() -> ssl.SSLContext:
    # httpx's context: certifi's roots (or SSL_CERT_FILE / SSL_CERT_DIR), hostname checking on.
    return httpx.create_ssl_context()


def read_image_body(headers: httpx.Headers, chunks: Iterable[bytes], max_bytes: int) -> bytes:
    content_type = headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type and not (content_type.startswith("image/") or content_type == "application/octet-stream"):
        raise InvalidInput(f"not an image: content type {content_type}")
    declared = int(headers.get("content-length") or 0)
    if declared > max_bytes:
        raise InvalidInput(f"file too large: {declared:,} bytes exceeds {max_bytes:,}")
    decoder = BoundedDecoder(headers.get("content-encoding", ""), max_bytes)
    body = bytearray()
    received = 0
    for chunk in chunks:
        # The bytes on the wire count too: a stream that never decodes to anything still ends here.
        received += len(chunk)
        if received > max_bytes:
            raise InvalidInput(f"file too large: more than {max_bytes:,} bytes")
        body += decoder.decode(chunk)
    decoder.finish()
    return bytes(body)


class BoundedDecoder:
    """Undoes a Content-Encoding one chunk at a time, never producing more than limit bytes in all."""

    def __init__(self, content_encoding: str, limit: int) -> None:
        self._encoding = content_encoding.strip().lower()
        self._limit = limit
        self._produced = 0
        self._started = False
        self._wbits: int | None
        if self._encoding in ("", "identity"):
            self._wbits = None
        elif self._encoding in ("gzip", "x-gzip"):
            self._wbits = 16 + zlib.MAX_WBITS
        elif self._encoding == "deflate":
            self._wbits = zlib.MAX_WBITS  # zlib-wrapped, as HTTP says; raw deflate is tried if that fails
        else:
            raise InvalidInput(f"unsupported content encoding {content_encoding!r}")
        self._zlib = None if self._wbits is None else zlib.decompressobj(self._wbits)

    def decode(self, data: bytes) -> bytes:
        if self._zlib is None:
            return self._count(data)
        if self._zlib.eof:
            return b""  # anything after the end of the compressed stream is ignored, as httpx does
        try:
            # max_length one past the room left: producing it proves the cap is passed, without
            # inflating the rest of the chunk (a 64 KiB chunk of a bomb holds some 64 MiB).
            piece = self._zlib.decompress(data, self._limit - self._produced + 1)
        except zlib.error as exc:
            if self._encoding == "deflate" and not self._started:
                self._started = True
                self._zlib = zlib.decompressobj(-zlib.MAX_WBITS)
                return self.decode(data)
            raise InvalidInput(f"corrupt {self._encoding} body: {exc}") from exc
        self._started = True
        return self._count(piece)

    def finish(self) -> None:
        if self._zlib is not None and not self._zlib.eof:
            raise InvalidInput(f"{self._encoding} body is cut short")

    def _count(self, data: bytes) -> bytes:
        self._produced += len(data)
        if self._produced > self._limit:
            encoded = "" if self._zlib is None else f" once {self._encoding}-decoded"
            raise InvalidInput(f"file too large: more than {self._limit:,} bytes{encoded}")
        return data


class DeadlinePassed(httpcore.TimeoutException):
    """The download's overall deadline ran out during a connect, TLS handshake, read or write."""


def _within(deadline: float, timeout: float | None, operation: Callable[[float | None], _T]) -> _T:
    """Run one socket operation with its own timeout cut down to what is left of the deadline."""
    left = deadline - time.monotonic()
    if left <= 0:
        raise DeadlinePassed("the deadline has passed")
    if timeout is not None and timeout < left:
        return operation(timeout)
    try:
        return operation(left)
    except httpcore.TimeoutException as exc:
        raise DeadlinePassed("the deadline passed while waiting") from exc


class PinnedBackend(httpcore.NetworkBackend):
    """Connects httpcore to the checked addresses of one host, in order; its streams keep the deadline."""

    def __init__(self, host: str, addresses: list[str], deadline: float) -> None:
        self._host = host
        self._addresses = addresses
        self._deadline = deadline
        self._sockets = httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        if host != self._host:
            # The pool of a hop serves that hop's host only; anything else was never checked.
            raise httpcore.ConnectError(f"refusing to connect to {host}: its addresses were not checked")
        last_error: Exception | None = None
        for address in self._addresses:
            try:
                stream = self._connect_one(address, port, timeout, local_address, socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                last_error = exc  # a host with several addresses: try the next one
                continue
            return _DeadlineStream(stream, self._deadline)
        assert last_error is not None  # resolve_checked never returns an empty list
        raise last_error

    def _connect_one(
        self,
        address: str,
        port: int,
        timeout: float | None,
        local_address: str | None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None,
    ) -> httpcore.NetworkStream:
        return _within(
            self._deadline,
            timeout,
            lambda t: self._sockets.connect_tcp(
                address, port, timeout=t, local_address=local_address, socket_options=socket_options
            ),
        )


class _DeadlineStream(httpcore.NetworkStream):
    """A connection whose every read, write and TLS handshake ends by the download's deadline."""

    def __init__(self, stream: httpcore.NetworkStream, deadline: float) -> None:
        self._stream = stream
        self._deadline = deadline

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return _within(self._deadline, timeout, lambda t: self._stream.read(max_bytes, t))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        _within(self._deadline, timeout, lambda t: self._stream.write(buffer, t))

    def close(self) -> None:
        self._stream.close()

    def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        tls = _within(
            self._deadline, timeout, lambda t: self._stream.start_tls(ssl_context, server_hostname, t)
        )
        return _DeadlineStream(tls, self._deadline)

    def get_extra_info(self, info: str) -> Any:
        return self._stream.get_extra_info(info)
