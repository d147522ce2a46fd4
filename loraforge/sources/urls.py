"""Fetch a picture by URL: checked addresses, one wall-clock deadline, and a cap on the decoded size.

Each hop of a download (the URL, then each redirect, up to url_max_redirects) resolves its host once,
checks every address (url_safety) and connects only to those addresses: httpcore, the HTTP layer under
httpx, is handed a network backend that connects to the checked addresses whatever the host is. The URL
itself is untouched, so the Host header, TLS SNI and certificate verification are all for the name the
user gave. (httpx's own transport takes no network backend, which is why httpcore is used directly.)

The same backend bounds every connect, TLS handshake, read and write by what is left of the download's
deadline, so a server that drips a byte a second, in its headers or its body, cannot keep a fetch alive.

The body is read raw and decoded here a bounded piece at a time, so a gzip bomb stops at max_file_bytes of
output instead of being inflated first.
"""

from __future__ import annotations

import functools
import socket
import ssl
import time
import zlib
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, TypeVar

import httpcore
import httpx

from loraforge.errors import InvalidInput
from loraforge.sources.url_safety import IPAddress, Resolver, connect_address, resolve_checked

if TYPE_CHECKING:
    from loraforge.sources.enumerate import SourceLimits

DEFAULT_DEADLINE_S = 60.0
"""The overall deadline of a download when the limits carry none (as Settings.url_deadline_s)."""

_REDIRECT_STATUSES = {301, 302, 303, 307, 308}
_TRANSPORT_ERRORS = (
    httpcore.TimeoutException,
    httpcore.NetworkError,
    httpcore.ProtocolError,
    httpcore.UnsupportedProtocol,
)
_T = TypeVar("_T")


def fetch(
    url: str,
    limits: SourceLimits,
    *,
    resolver: Resolver = socket.getaddrinfo,
    ssl_context: ssl.SSLContext | None = None,
    deadline_s: float | None = None,
) -> bytes:
    """The body of an image URL; every hop's host must be public unless private URLs are allowed.

    resolver stands in for socket.getaddrinfo and ssl_context for the default certificate store (tests give
    names their own answers and trust their own CA); deadline_s overrides the limits' overall deadline.
    """
    if deadline_s is None:
        deadline_s = limits.url_deadline_s
    deadline = time.monotonic() + deadline_s
    target = _parse(url)
    for _hop in range(limits.url_max_redirects + 1):
        addresses = _checked_addresses(target, limits.allow_private_urls, resolver)
        try:
            outcome = _get(target, addresses, limits, deadline, ssl_context or _default_ssl_context())
        except _DeadlinePassed as exc:
            raise InvalidInput(
                f"cannot fetch {target}: not done within the {deadline_s:g} s deadline"
            ) from exc
        except _TRANSPORT_ERRORS as exc:
            raise InvalidInput(f"cannot fetch {target}: {exc.__class__.__name__}: {exc}") from exc
        if isinstance(outcome, bytes):
            return outcome
        target = outcome
    raise InvalidInput(f"too many redirects (more than {limits.url_max_redirects})")


def check_url(url: str, *, allow_private: bool, resolver: Resolver = socket.getaddrinfo) -> list[IPAddress]:
    """Refuse non-http(s) URLs and, unless allowed, hosts with any non-public address; the addresses."""
    return _checked_addresses(_parse(url), allow_private, resolver)


def _parse(url: str) -> httpx.URL:
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL as exc:
        raise InvalidInput(f"invalid URL {url!r}: {exc}") from exc
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise InvalidInput(f"unsupported URL {url!r}: only http(s) URLs are fetched")
    return parsed


def _checked_addresses(target: httpx.URL, allow_private: bool, resolver: Resolver) -> list[IPAddress]:
    port = target.port or (443 if target.scheme == "https" else 80)
    host = target.raw_host.decode("ascii")  # IDNA-encoded, as the resolver and the certificate know it
    return resolve_checked(host, port, allow_private=allow_private, resolver=resolver)


@functools.cache
def _default_ssl_context() -> ssl.SSLContext:
    # httpx's context: certifi's roots (or SSL_CERT_FILE / SSL_CERT_DIR), hostname checking on.
    return httpx.create_ssl_context()


def _get(
    target: httpx.URL,
    addresses: list[IPAddress],
    limits: SourceLimits,
    deadline: float,
    ssl_context: ssl.SSLContext,
) -> bytes | httpx.URL:
    """One request to one checked host: the picture's bytes, or the URL a redirect points to."""
    backend = _PinnedBackend(
        target.raw_host.decode("ascii"), [connect_address(a) for a in addresses], deadline
    )
    timeout = limits.url_timeout_s
    request_url = httpcore.URL(
        scheme=target.raw_scheme, host=target.raw_host, port=target.port, target=target.raw_path
    )
    headers = [
        (b"Host", target.netloc),
        (b"User-Agent", b"loraforge/0.1"),
        (b"Accept", b"*/*"),
        # Pictures are compressed already; a server that encodes anyway is still decoded below, bounded.
        (b"Accept-Encoding", b"identity"),
    ]
    # A fresh pool per hop: a kept-alive connection must never serve a host it was not checked for.
    with (
        httpcore.ConnectionPool(
            ssl_context=ssl_context, network_backend=backend, max_keepalive_connections=0, retries=0
        ) as pool,
        pool.stream(
            "GET",
            request_url,
            headers=headers,
            extensions={"timeout": {"connect": timeout, "read": timeout, "write": timeout, "pool": timeout}},
        ) as response,
    ):
        response_headers = httpx.Headers(response.headers)
        if response.status in _REDIRECT_STATUSES:
            location = response_headers.get("location")
            if not location:
                raise InvalidInput(f"HTTP {response.status} from {target} without a Location")
            return _parse(str(target.join(location)))
        if response.status != 200:
            raise InvalidInput(f"HTTP {response.status} from {target}")
        return _read_image_body(response_headers, response.iter_stream(), limits.max_file_bytes)


def _read_image_body(headers: httpx.Headers, chunks: Iterable[bytes], max_bytes: int) -> bytes:
    content_type = headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type and not (content_type.startswith("image/") or content_type == "application/octet-stream"):
        raise InvalidInput(f"not an image: content type {content_type}")
    declared = int(headers.get("content-length") or 0)
    if declared > max_bytes:
        raise InvalidInput(f"file too large: {declared:,} bytes exceeds {max_bytes:,}")
    decoder = _BoundedDecoder(headers.get("content-encoding", ""), max_bytes)
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


class _BoundedDecoder:
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


class _DeadlinePassed(httpcore.TimeoutException):
    """The download's overall deadline ran out during a connect, TLS handshake, read or write."""


def _within(deadline: float, timeout: float | None, operation: Callable[[float | None], _T]) -> _T:
    """Run one socket operation with its own timeout cut down to what is left of the deadline."""
    left = deadline - time.monotonic()
    if left <= 0:
        raise _DeadlinePassed("the deadline has passed")
    if timeout is not None and timeout < left:
        return operation(timeout)
    try:
        return operation(left)
    except httpcore.TimeoutException as exc:
        raise _DeadlinePassed("the deadline passed while waiting") from exc


class _PinnedBackend(httpcore.NetworkBackend):
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
