"""Which network addresses a URL fetch may connect to, and how a URL's host becomes those addresses.

A host is turned into addresses once: an IP literal (IPv6, or IPv4 in any spelling the C library
accepts, such as 2130706433 or 0x7f.1) stands for itself; any other name goes through the resolver. Every
address is then checked, and the caller connects to exactly those addresses, so a name that answers
differently the second time (DNS rebinding) cannot send the connection somewhere that was not checked.

The tables follow the IANA special-purpose address registries: anything not globally reachable, plus
multicast, broadcast and the IPv6 transition forms that carry an IPv4 address inside.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import unquote

from loraforge.errors import InvalidInput

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

Resolver = Callable[[str, int, int, int], Sequence[tuple[Any, ...]]]
"""Called like socket.getaddrinfo(host, port, family, type); each answer's last item is a sockaddr."""

_ALLOW_HINT = "(set LORAFORGE_ALLOW_PRIVATE_URLS=true to allow)"

_IPV4_REFUSED = [
    (ipaddress.IPv4Network(net), reason)
    for net, reason in [
        ("0.0.0.0/8", "unspecified"),
        ("10.0.0.0/8", "private"),
        ("100.64.0.0/10", "shared address space (carrier-grade NAT)"),
        ("127.0.0.0/8", "loopback"),
        ("169.254.0.0/16", "link-local"),
        ("172.16.0.0/12", "private"),
        ("192.0.0.0/24", "IETF protocol assignment"),
        ("192.0.2.0/24", "documentation"),
        ("192.88.99.0/24", "6to4 relay anycast"),
        ("192.168.0.0/16", "private"),
        ("198.18.0.0/15", "benchmarking"),
        ("198.51.100.0/24", "documentation"),
        ("203.0.113.0/24", "documentation"),
        ("224.0.0.0/4", "multicast"),
        ("255.255.255.255/32", "broadcast"),  # before 240/4, which contains it
        ("240.0.0.0/4", "reserved"),
    ]
]

_IPV6_REFUSED = [
    (ipaddress.IPv6Network(net), reason)
    for net, reason in [
        ("::/128", "unspecified"),
        ("::1/128", "loopback"),
        ("ff00::/8", "multicast"),
        ("fe80::/10", "link-local"),
        ("fec0::/10", "site-local"),
        ("fc00::/7", "unique-local"),
        ("2001:db8::/32", "documentation"),
        ("3fff::/20", "documentation"),
        ("2001::/23", "IETF protocol assignment"),
    ]
]
_IPV6_GLOBAL_UNICAST = ipaddress.IPv6Network("2000::/3")
_IPV4_COMPATIBLE = ipaddress.IPv6Network("::/96")
_NAT64_WELL_KNOWN = ipaddress.IPv6Network("64:ff9b::/96")
_NAT64_LOCAL_USE = ipaddress.IPv6Network("64:ff9b:1::/48")


def refusal_reason(ip: IPAddress) -> str | None:
    """Why a fetch must not connect to ip, or None for a public unicast address."""
    if isinstance(ip, ipaddress.IPv4Address):
        return next((reason for net, reason in _IPV4_REFUSED if ip in net), None)
    ip = ipaddress.IPv6Address(ip.packed)  # drop any %zone: it does not change what the address is
    # Transition forms carry an IPv4 address that the host, a NAT64 gateway or a 6to4 relay will reach;
    # where it can be read it is judged by the IPv4 rules (DNS64 networks return 64:ff9b::a.b.c.d for every
    # IPv4-only site, so a public one must stay reachable).
    if ip.ipv4_mapped is not None:
        return _embedded("IPv4-mapped", ip.ipv4_mapped)
    if ip in _NAT64_WELL_KNOWN:
        return _embedded("NAT64", ipaddress.IPv4Address(ip.packed[12:]))
    if ip.sixtofour is not None:
        return _embedded("6to4", ip.sixtofour)
    if ip.teredo is not None:
        # The client address inside a Teredo address is obfuscated and the server part says nothing
        # about where the packets end up, so there is nothing trustworthy to check.
        return "Teredo tunnel address"
    if ip in _NAT64_LOCAL_USE:
        return "local-use NAT64 address"
    for net, reason in _IPV6_REFUSED:
        if ip in net:
            return reason
    if ip in _IPV4_COMPATIBLE:
        # Deprecated (RFC 4291) and never assigned; ::a.b.c.d must not be taken for a.b.c.d.
        return f"IPv4-compatible form of {ipaddress.IPv4Address(ip.packed[12:])}"
    if ip not in _IPV6_GLOBAL_UNICAST:
        return "reserved"
    return None


def _embedded(form: str, inner: ipaddress.IPv4Address) -> str | None:
    reason = refusal_reason(inner)
    return None if reason is None else f"{form} form of {inner}, {reason}"


def host_address(host: str) -> IPAddress | None:
    """The address a URL host names by itself, or None for a name that needs resolving.

    IPv4 is read the way inet_aton reads it (one to four dot-separated numbers, each decimal, 0x-hex or
    0-octal, the last filling the remaining bytes), so 2130706433, 0x7f.1 and 017700000001 are all
    127.0.0.1 here exactly as they would be to the operating system's resolver.
    """
    if ":" in host:
        literal = unquote(host)  # a zone in a URL is written %25eth0
        try:
            return ipaddress.IPv6Address(literal)
        except ValueError as exc:
            raise InvalidInput(f"invalid IPv6 address {host!r} in URL") from exc
    return _ipv4_number(host)


def _ipv4_number(host: str) -> ipaddress.IPv4Address | None:
    parts = host[:-1].split(".") if host.endswith(".") else host.split(".")
    if not 1 <= len(parts) <= 4:
        return None
    numbers = []
    for part in parts:
        number = _c_integer(part)
        if number is None:
            return None
        numbers.append(number)
    *leading, last = numbers
    if any(n > 0xFF for n in leading) or last >= 1 << (8 * (5 - len(numbers))):
        # Out of range: the C library refuses it as a number, so the resolver would treat it as a name;
        # a name made of numbers is not something we look up.
        raise InvalidInput(f"invalid IPv4 address {host!r} in URL")
    value = last
    for index, number in enumerate(leading):
        value |= number << (24 - 8 * index)
    return ipaddress.IPv4Address(value)


_DIGITS = {8: "01234567", 10: "0123456789", 16: "0123456789abcdef"}


def _c_integer(text: str) -> int | None:
    """A number as C's strtoul(text, base 0) reads it, or None if text is not entirely one."""
    if text[:2].lower() == "0x":
        digits, base = text[2:].lower(), 16
    elif len(text) > 1 and text.startswith("0"):
        digits, base = text[1:], 8
    else:
        digits, base = text, 10
    if not digits or any(c not in _DIGITS[base] for c in digits):
        return None
    return int(digits, base)


def resolve_checked(host: str, port: int, *, allow_private: bool, resolver: Resolver) -> list[IPAddress]:
    """Every address host stands for, each one checked; the only addresses a fetch may connect to.

    Raises InvalidInput when the host cannot be resolved or any of its addresses is not public (unless
    private addresses are allowed): one bad answer among good ones is enough to refuse, since the
    connection could go to any of them.
    """
    literal = host_address(host)
    if literal is not None:
        addresses: list[IPAddress] = [literal]
    else:
        addresses = _resolve(host, port, resolver)
    if not allow_private:
        for address in addresses:
            reason = refusal_reason(address)
            if reason is not None:
                how = "it is" if literal is not None else "it resolves to"
                raise InvalidInput(
                    f"refusing {host}: {how} the non-public address {address} ({reason}) {_ALLOW_HINT}"
                )
    return addresses


def _resolve(host: str, port: int, resolver: Resolver) -> list[IPAddress]:
    try:
        answers = resolver(host, port, 0, socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise InvalidInput(f"cannot resolve host {host}: {getattr(exc, 'strerror', None) or exc}") from exc
    addresses: list[IPAddress] = []
    for answer in answers:
        sockaddr = answer[-1]
        if not isinstance(sockaddr, tuple) or not isinstance(sockaddr[0], str):
            continue  # not an internet address (an AF_UNIX or raw answer): nothing to connect to
        try:
            address = ipaddress.ip_address(sockaddr[0])
        except ValueError as exc:
            raise InvalidInput(f"cannot resolve host {host}: {sockaddr[0]!r} is not an address") from exc
        if address not in addresses:
            addresses.append(address)
    if not addresses:
        raise InvalidInput(f"cannot resolve host {host}: no addresses")
    return addresses


def connect_address(ip: IPAddress) -> str:
    """The address string to hand to connect(): an IPv4-mapped address is reached over IPv4 itself."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return str(ip.ipv4_mapped)
    return str(ip)
