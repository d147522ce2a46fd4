"""Fetch a picture by URL with timeouts, a size cap, a content-type check and limited, checked redirects."""

from __future__ import annotations

import ipaddress
import socket
from typing import TYPE_CHECKING
from urllib.parse import urljoin, urlparse

import httpx

from loraforge.errors import InvalidInput

if TYPE_CHECKING:
    from loraforge.sources.enumerate import SourceLimits


def fetch(url: str, limits: SourceLimits) -> bytes:
    """The body of an image URL; every hop's host must be public unless private URLs are allowed."""
    with httpx.Client(timeout=limits.url_timeout_s, follow_redirects=False) as client:
        for _hop in range(limits.url_max_redirects + 1):
            check_url(url, allow_private=limits.allow_private_urls)
            try:
                with client.stream("GET", url, headers={"User-Agent": "loraforge/0.1"}) as response:
                    if response.is_redirect:
                        url = urljoin(url, response.headers.get("location", ""))
                        continue
                    if response.status_code != 200:
                        raise InvalidInput(f"HTTP {response.status_code} from {url}")
                    return _read_image_body(response, limits.max_file_bytes)
            except httpx.HTTPError as exc:
                raise InvalidInput(f"cannot fetch {url}: {exc.__class__.__name__}: {exc}") from exc
    raise InvalidInput(f"too many redirects (more than {limits.url_max_redirects})")


def _read_image_body(response: httpx.Response, max_bytes: int) -> bytes:
    content_type = response.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type and not (content_type.startswith("image/") or content_type == "application/octet-stream"):
        raise InvalidInput(f"not an image: content type {content_type}")
    declared = int(response.headers.get("content-length") or 0)
    if declared > max_bytes:
        raise InvalidInput(f"file too large: {declared:,} bytes exceeds {max_bytes:,}")
    body = bytearray()
    for chunk in response.iter_bytes():
        body.extend(chunk)
        if len(body) > max_bytes:
            raise InvalidInput(f"file too large: more than {max_bytes:,} bytes")
    return bytes(body)


def check_url(url: str, *, allow_private: bool) -> None:
    """Refuse non-http(s) URLs and, unless allowed, hosts that resolve to private or loopback addresses."""
    parsed = urlparse(url)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise InvalidInput(f"unsupported URL {url!r}: only http(s) URLs are fetched")
    if allow_private:
        return
    try:
        addresses = {info[4][0] for info in socket.getaddrinfo(parsed.hostname, parsed.port or 80)}
    except socket.gaierror as exc:
        raise InvalidInput(f"cannot resolve host {parsed.hostname}: {exc.strerror}") from exc
    for address in addresses:
        ip = ipaddress.ip_address(str(address).split("%")[0])
        if not ip.is_global:
            raise InvalidInput(
                f"refusing {url}: {parsed.hostname} resolves to the non-public address {ip} "
                "(set LORAFORGE_ALLOW_PRIVATE_URLS=true to allow)"
            )
