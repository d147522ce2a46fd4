"""Fetch a picture by URL: checked addresses, one wall-clock deadline, and a cap on the decoded size.

Each hop of a download (the URL, then each redirect, up to url_max_redirects) resolves its host once,
checks every address (url_safety) and connects only to those addresses, through pinned_http's
PinnedBackend. That backend bounds every connect, TLS handshake, read and write by what is left of the
download's deadline, and the body is decoded a bounded piece at a time, so neither a server that drips a
byte a second nor a gzip bomb can keep a fetch alive or fill memory.
"""

from __future__ import annotations

import socket
import ssl
import time
from typing import TYPE_CHECKING

import httpcore
import httpx

from loraforge.errors import InvalidInput
from loraforge.sources.pinned_http import (
    DeadlinePassed,
    PinnedBackend,
    checked_addresses,
    default_ssl_context,
    parse_url,
    read_image_body,
)
from loraforge.sources.url_safety import IPAddress, Resolver, connect_address

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
    target = parse_url(url)
    for _hop in range(limits.url_max_redirects + 1):
        addresses = checked_addresses(target, limits.allow_private_urls, resolver)
        try:
            outcome = _get(target, addresses, limits, deadline, ssl_context or default_ssl_context())
        except DeadlinePassed as exc:
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
    return checked_addresses(parse_url(url), allow_private, resolver)


def _get(
    target: httpx.URL,
    addresses: list[IPAddress],
    limits: SourceLimits,
    deadline: float,
    ssl_context: ssl.SSLContext,
) -> bytes | httpx.URL:
    """One request to one checked host: the picture's bytes, or the URL a redirect points to."""
    backend = PinnedBackend(
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
            return parse_url(str(target.join(location)))
        if response.status != 200:
            raise InvalidInput(f"HTTP {response.status} from {target}")
        return read_image_body(response_headers, response.iter_stream(), limits.max_file_bytes)
