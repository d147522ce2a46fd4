"""The one HTTP client of every provider: checked addresses, rate limits, Retry-After, a contact User-Agent.

Each request goes through the URL safety code of loraforge.sources.urls: the host is resolved once, every
address is checked (no private or loopback address unless LORAFORGE_ALLOW_PRIVATE_URLS), the connection is
pinned to those addresses, a deadline bounds the whole exchange and the body is capped while it is read.
API calls carry the provider's key and therefore follow no redirect (a key must never travel to a host we
did not configure); picture downloads carry no key and follow redirects hop by hop, each hop checked.

A 429 or 503 waits for its Retry-After (capped at `max_wait_s`) or, without one, backs off exponentially;
after `max_retries` the call fails, and so does one whose Retry-After is longer than the cap.
"""

from __future__ import annotations

import json
import socket
import ssl
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Any, Protocol
from urllib.parse import urlencode

import httpcore
import httpx

from loraforge.errors import InvalidInput, LoraForgeError
from loraforge.sources.enumerate import SourceLimits
from loraforge.sources.pinned_http import (
    BoundedDecoder,
    DeadlinePassed,
    PinnedBackend,
    checked_addresses,
    parse_url,
    read_image_body,
)
from loraforge.sources.url_safety import Resolver, connect_address

MAX_JSON_BYTES = 8 * 1024 * 1024
"""A provider's answer is a page of metadata: anything bigger is not one."""
_RETRY_STATUSES = (429, 503)
_REDIRECTS = (301, 302, 303, 307, 308)


class Pacer(Protocol):
    """A pace shared beyond one client (pacing.CatalogPacer)."""

    def __call__(self, interval_s: float) -> float:
        """Reserve the next call's slot; the seconds to wait for it."""

    def hold(self, seconds: float) -> None:
        """Nobody's next call starts before `seconds` from now (the provider's Retry-After)."""


class ProviderError(LoraForgeError):
    """A provider could not be searched (unreachable, too slow, refusing, answering garbage): that
    provider stops, the others go on."""


class RateLimited(ProviderError):
    """Still 429/503 after every retry, or asked to wait longer than allowed."""


@dataclass
class Response:
    status: int
    headers: httpx.Headers
    body: bytes

    def json(self) -> Any:
        """The body as JSON; an empty body is None (Safebooru's "no results")."""
        if not self.body.strip():
            return None
        try:
            return json.loads(self.body)
        except ValueError as exc:
            raise ProviderError(f"answer is not JSON: {self.body[:80]!r}") from exc


@dataclass
class ApiClient:
    """Calls one provider, politely: at most one call per `min_interval_s` (across processes with a
    pacer), Retry-After honoured."""

    provider: str
    base_url: str
    limits: SourceLimits
    user_agent: str
    min_interval_s: float = 1.0
    max_retries: int = 4
    max_wait_s: float = 120.0
    api_key: str | None = field(default=None, repr=False)
    """The provider's key (a setting): providers send it to the API only, never to a picture's host."""
    resolver: Resolver = socket.getaddrinfo
    ssl_context: ssl.SSLContext | None = None
    sleep: Callable[[float], None] = time.sleep
    pacer: Pacer | None = None
    """Shares the pace with every other process (pacing.CatalogPacer); None: this client's calls only."""
    _last_call: float = field(default=0.0, init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False)
    waited_s: float = field(default=0.0, init=False)
    """Time spent honouring rate limits and Retry-After, for the summary."""

    def get_json(
        self, path: str, params: Mapping[str, Any] | None = None, *, headers: Mapping[str, str] | None = None
    ) -> Any:
        """GET base_url + path with params; the decoded JSON answer (None for an empty body)."""
        query = urlencode({k: v for k, v in (params or {}).items() if v is not None})
        url = f"{self.base_url}{path}" + (f"?{query}" if query else "")
        try:
            response = self._with_retries(
                lambda: self._exchange(
                    url, {**(headers or {}), "Accept": "application/json"}, redirects=0, picture=False
                )
            )
        except InvalidInput as exc:  # an unsafe or unreachable address, a body over the cap
            raise ProviderError(f"{self.provider}: {exc}") from exc
        if response.status != 200:
            raise ProviderError(f"{self.provider} answered HTTP {response.status}: {_excerpt(response.body)}")
        return response.json()

    def download(self, url: str) -> bytes:
        """The bytes of a picture (no key sent; redirects followed, each hop checked)."""
        response = self._with_retries(
            lambda: self._exchange(
                url, {"Accept": "image/*"}, redirects=self.limits.url_max_redirects, picture=True
            )
        )
        if response.status != 200:
            raise InvalidInput(f"HTTP {response.status} from {url}")
        return response.body

    def _with_retries(self, call: Callable[[], Response]) -> Response:
        for attempt in range(self.max_retries + 1):
            self._pace()
            response = call()
            if response.status not in _RETRY_STATUSES:
                return response
            wait = _retry_after(response.headers.get("retry-after"))
            if wait is None:
                wait = min(2.0**attempt, self.max_wait_s)
            if wait > self.max_wait_s:
                raise RateLimited(
                    f"{self.provider} asks to wait {wait:g} s (Retry-After), more than the "
                    f"{self.max_wait_s:g} s allowed (LORAFORGE_SEARCH_MAX_WAIT_S)"
                )
            if attempt == self.max_retries:
                break
            if self.pacer is not None:
                self.pacer.hold(wait)  # the provider meant every client of the deployment
            self.waited_s += wait
            self.sleep(wait)
        raise RateLimited(
            f"{self.provider} still answers HTTP {response.status} after {self.max_retries} retries"
        )

    def _pace(self) -> None:
        with self._lock:
            if self.pacer is not None:
                wait = self.pacer(self.min_interval_s)
            else:
                wait = self._last_call + self.min_interval_s - time.monotonic()
            if wait > 0:
                self.waited_s += wait
                self.sleep(wait)
            self._last_call = time.monotonic()

    def _exchange(self, url: str, headers: Mapping[str, str], *, redirects: int, picture: bool) -> Response:
        deadline = time.monotonic() + self.limits.url_deadline_s
        target = parse_url(url)
        for _hop in range(redirects + 1):
            addresses = checked_addresses(target, self.limits.allow_private_urls, self.resolver)
            try:
                outcome = self._get(
                    target, [connect_address(a) for a in addresses], headers, deadline, picture=picture
                )
            except DeadlinePassed as exc:
                raise ProviderError(
                    f"{target.host} did not answer within {self.limits.url_deadline_s:g} s"
                ) from exc
            except (httpcore.TimeoutException, httpcore.NetworkError, httpcore.ProtocolError) as exc:
                raise ProviderError(f"cannot reach {target.host}: {exc.__class__.__name__}: {exc}") from exc
            if isinstance(outcome, Response):
                return outcome
            if redirects == 0:
                raise ProviderError(f"{self.provider} redirects its API to {outcome}: not followed")
            target = outcome
        raise InvalidInput(f"too many redirects (more than {redirects})")

    def _get(
        self,
        target: httpx.URL,
        addresses: list[str],
        headers: Mapping[str, str],
        deadline: float,
        *,
        picture: bool,
    ) -> Response | httpx.URL:
        backend = PinnedBackend(target.raw_host.decode("ascii"), addresses, deadline)
        timeout = self.limits.url_timeout_s
        request_url = httpcore.URL(
            scheme=target.raw_scheme, host=target.raw_host, port=target.port, target=target.raw_path
        )
        sent = [(b"Host", target.netloc), (b"User-Agent", self.user_agent.encode())]
        sent += [(k.encode(), v.encode()) for k, v in headers.items()]
        sent.append((b"Accept-Encoding", b"identity"))
        with (
            httpcore.ConnectionPool(
                ssl_context=self.ssl_context or httpx.create_ssl_context(),
                network_backend=backend,
                max_keepalive_connections=0,
                retries=0,
            ) as pool,
            pool.stream(
                "GET",
                request_url,
                headers=sent,
                extensions={"timeout": dict.fromkeys(("connect", "read", "write", "pool"), timeout)},
            ) as response,
        ):
            received = httpx.Headers(response.headers)
            if response.status in _REDIRECTS:
                location = received.get("location")
                if not location:
                    raise InvalidInput(f"HTTP {response.status} from {target} without a Location")
                return parse_url(str(target.join(location)))
            if response.status != 200 or not picture:
                body = _read_capped(received, response.iter_stream(), MAX_JSON_BYTES)
            else:
                body = read_image_body(received, response.iter_stream(), self.limits.max_file_bytes)
            return Response(response.status, received, body)


def _read_capped(headers: httpx.Headers, chunks: Any, max_bytes: int) -> bytes:
    decoder = BoundedDecoder(headers.get("content-encoding", ""), max_bytes)
    body = bytearray()
    for chunk in chunks:
        body += decoder.decode(chunk)
    decoder.finish()
    return bytes(body)


def _retry_after(value: str | None) -> float | None:
    """Retry-After in seconds: a number, or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, moment.timestamp() - time.time())


def _excerpt(body: bytes) -> str:
    return " ".join(body[:200].decode("utf-8", "replace").split()) or "(empty body)"


def user_agent(contact: str) -> str:
    """Who calls, and how to reach them: Wikimedia's User-Agent policy, polite everywhere else."""
    return f"loraforge/0.1 (+{contact}) dataset-builder"
