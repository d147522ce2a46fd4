"""Where a URL fetch may connect: every address form that reaches a non-public network is refused, the
address checked is the address connected to (no DNS rebinding), and each redirect hop is resolved, checked
and pinned on its own. Servers are real, on loopback; the resolver is a table the test hands to fetch."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator

import pytest

from loraforge.errors import InvalidInput
from loraforge.sources import SourceLimits
from loraforge.sources.urls import check_url, fetch
from tests.support.images import jpeg_bytes
from tests.support.network_guard import loopback_only
from tests.support.url_servers import NameTable, RawServer, header, redirect_to, serve_bytes

PICTURE = jpeg_bytes(seed=13)
PUBLIC = "93.184.215.14"  # a public address; the network guard keeps tests from ever reaching it


def limits(*, allow_private: bool) -> SourceLimits:
    return SourceLimits(
        max_file_bytes=10**7,
        max_zip_ratio=100,
        max_zip_total_bytes=10**9,
        url_timeout_s=5,
        url_max_redirects=3,
        allow_private_urls=allow_private,
    )


@pytest.fixture
def picture_server() -> Iterator[RawServer]:
    with RawServer(serve_bytes(PICTURE)) as server:
        yield server


# Every form below names an address outside the public internet; the reason names what it is.
REFUSED = [
    ("http://127.0.0.1/", "loopback"),
    ("http://127.9.8.7/", "loopback"),
    ("http://2130706433/", "127.0.0.1 (loopback)"),  # decimal
    ("http://0x7f.1/", "127.0.0.1 (loopback)"),  # hex, two parts
    ("http://017700000001/", "127.0.0.1 (loopback)"),  # octal
    ("http://0x7f000001/", "127.0.0.1 (loopback)"),
    ("http://0177.0.1/", "127.0.0.1 (loopback)"),
    ("http://127.1/", "127.0.0.1 (loopback)"),
    ("http://127.0.0.1./", "127.0.0.1 (loopback)"),
    ("http://0/", "0.0.0.0 (unspecified)"),
    ("http://0.0.0.0/", "unspecified"),
    ("http://[::1]/", "loopback"),
    ("http://[::]/", "unspecified"),
    ("http://[::ffff:127.0.0.1]/", "IPv4-mapped form of 127.0.0.1, loopback"),
    ("http://[::ffff:7f00:1]/", "IPv4-mapped form of 127.0.0.1, loopback"),
    ("http://[::ffff:10.0.0.1]/", "IPv4-mapped form of 10.0.0.1, private"),
    ("http://[::127.0.0.1]/", "IPv4-compatible form of 127.0.0.1"),
    ("http://[::8.8.8.8]/", "IPv4-compatible form of 8.8.8.8"),
    ("http://[64:ff9b::7f00:1]/", "NAT64 form of 127.0.0.1, loopback"),
    ("http://[64:ff9b::a9fe:a9fe]/", "NAT64 form of 169.254.169.254, link-local"),
    ("http://[64:ff9b:1::808:808]/", "local-use NAT64"),
    ("http://[2002:7f00:1::1]/", "6to4 form of 127.0.0.1, loopback"),
    ("http://[2002:c0a8:101::1]/", "6to4 form of 192.168.1.1, private"),
    ("http://[2001:0:4136:e378:8000:63bf:3fff:fdd2]/", "Teredo"),
    ("http://[2001::1]/", "Teredo"),
    ("http://[ff02::1]/", "multicast"),
    ("http://[ff0e::1]/", "multicast"),
    ("http://224.0.0.1/", "multicast"),
    ("http://239.255.255.250/", "multicast"),
    ("http://[fe80::1]/", "link-local"),
    ("http://[fe80::1%25eth0]/", "link-local"),
    ("http://169.254.169.254/", "link-local"),  # the cloud metadata service
    ("http://[fd00::1]/", "unique-local"),
    ("http://[fc00::1]/", "unique-local"),
    ("http://[fec0::1]/", "site-local"),
    ("http://[2001:db8::1]/", "documentation"),
    ("http://[3fff::1]/", "documentation"),
    ("http://[2001:2::1]/", "IETF protocol assignment"),
    ("http://[100::1]/", "reserved"),
    ("http://[4000::1]/", "reserved"),
    ("http://192.0.2.1/", "documentation"),
    ("http://198.51.100.7/", "documentation"),
    ("http://203.0.113.9/", "documentation"),
    ("http://10.1.2.3/", "private"),
    ("http://172.16.0.1/", "private"),
    ("http://172.31.255.254/", "private"),
    ("http://192.168.1.1/", "private"),
    ("http://100.64.0.1/", "shared address space"),
    ("http://100.127.255.254/", "shared address space"),
    ("http://198.18.0.1/", "benchmarking"),
    ("http://198.19.255.1/", "benchmarking"),
    ("http://192.0.0.8/", "IETF protocol assignment"),
    ("http://192.88.99.1/", "6to4 relay anycast"),
    ("http://255.255.255.255/", "broadcast"),
    ("http://240.0.0.1/", "reserved"),
]


@pytest.mark.parametrize(("url", "reason"), REFUSED)
def test_non_public_address_forms_are_refused(url: str, reason: str) -> None:
    lookups = NameTable({})
    with pytest.raises(InvalidInput, match="non-public address") as refused:
        check_url(url, allow_private=False, resolver=lookups)
    assert reason in str(refused.value)
    assert "\n" not in str(refused.value)
    assert lookups.lookups == []  # an address literal is never handed to the resolver


@pytest.mark.parametrize(
    "url_form",
    [
        "http://127.0.0.1:{port}/x.jpg",
        "http://2130706433:{port}/x.jpg",
        "http://0x7f.1:{port}/x.jpg",
        "http://017700000001:{port}/x.jpg",
        "http://127.1:{port}/x.jpg",
        "http://[::ffff:127.0.0.1]:{port}/x.jpg",
        "http://[64:ff9b::7f00:1]:{port}/x.jpg",
        "http://localhost:{port}/x.jpg",
    ],
)
def test_loopback_spellings_never_reach_the_loopback_server(picture_server: RawServer, url_form: str) -> None:
    url = url_form.format(port=picture_server.port)
    with pytest.raises(InvalidInput, match="non-public address"):
        fetch(url, limits(allow_private=False))
    assert picture_server.accepted == 0


def test_the_same_spellings_do_reach_it_when_private_urls_are_allowed(picture_server: RawServer) -> None:
    # The refusals above are the policy, not the spellings failing to parse: allowed, they arrive.
    for url_form in ["http://2130706433:{port}/x.jpg", "http://0x7f.1:{port}/x.jpg", "http://127.1:{port}/"]:
        assert fetch(url_form.format(port=picture_server.port), limits(allow_private=True)) == PICTURE
    assert picture_server.accepted == 3


@pytest.mark.parametrize(
    ("answers", "reason"),
    [
        ([PUBLIC, "127.0.0.1"], "127.0.0.1 (loopback)"),
        (["2606:4700:4700::1111", "fd12::5"], "fd12::5 (unique-local)"),
        (["::ffff:127.0.0.1"], "IPv4-mapped form of 127.0.0.1"),
        (["fe80::1%eth0"], "link-local"),
        (["224.0.0.251"], "multicast"),
    ],
)
def test_every_resolved_address_is_checked(answers: list[str], reason: str) -> None:
    names = NameTable({"pics.example": [answers]})
    with pytest.raises(InvalidInput, match="pics.example: it resolves to the non-public address") as refused:
        check_url("https://pics.example/a.jpg", allow_private=False, resolver=names)
    assert reason in str(refused.value)


@pytest.mark.parametrize(
    ("url", "answers", "expected"),
    [
        ("http://8.8.8.8/", [], ["8.8.8.8"]),
        ("http://134744072/", [], ["8.8.8.8"]),  # decimal spelling of a public address
        ("http://0x8.0x8.0x8.0x8/", [], ["8.8.8.8"]),
        ("http://[2606:4700:4700::1111]/", [], ["2606:4700:4700::1111"]),
        ("http://[64:ff9b::808:808]/", [], ["64:ff9b::808:808"]),  # DNS64 answer for an IPv4-only site
        ("http://[2002:808:808::1]/", [], ["2002:808:808::1"]),
        ("http://[::ffff:8.8.8.8]/", [], ["::ffff:8.8.8.8"]),
        ("https://pics.example/", [PUBLIC, "2606:4700::6810:84e5"], [PUBLIC, "2606:4700::6810:84e5"]),
        ("https://100.example/", ["100.63.255.255", "100.128.0.1"], ["100.63.255.255", "100.128.0.1"]),
    ],
)
def test_public_addresses_pass(url: str, answers: list[str], expected: list[str]) -> None:
    names = NameTable({"pics.example": [answers], "100.example": [answers]})
    addresses = check_url(url, allow_private=False, resolver=names)
    assert addresses == [ipaddress.ip_address(address) for address in expected]


@pytest.mark.parametrize(
    "url", ["http://256.0.0.1/", "http://1.2.3.0x100/", "http://4294967296/", "http://0177.0.0.1/"]
)
def test_out_of_range_numbers_are_invalid_not_looked_up(url: str) -> None:
    names = NameTable({})
    # (httpx itself refuses a four-part dotted address with a non-decimal part, in its own words)
    with pytest.raises(InvalidInput, match="(?i)invalid IPv4 address"):
        check_url(url, allow_private=False, resolver=names)
    assert names.lookups == []


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://example.com/x.jpg", "gopher://127.0.0.1/"])
def test_non_http_schemes_are_refused(url: str) -> None:
    with pytest.raises(InvalidInput, match="only http"):
        check_url(url, allow_private=True)


def test_unknown_names_are_an_input_error() -> None:
    with pytest.raises(InvalidInput, match="cannot resolve host nowhere.example"):
        fetch("http://nowhere.example/x.jpg", limits(allow_private=False), resolver=NameTable({}))


def test_dns_rebinding_connects_only_to_the_address_it_checked(picture_server: RawServer) -> None:
    # The name answers a public address when asked first and 127.0.0.1 ever after; a fetch that checks
    # one answer and connects by asking again would reach the loopback server.
    names = NameTable({"rebind.example": [[PUBLIC], ["127.0.0.1"]]})
    url = f"http://rebind.example:{picture_server.port}/x.jpg"
    with loopback_only() as connections, pytest.raises(InvalidInput, match="cannot fetch"):
        fetch(url, limits(allow_private=False), resolver=names)
    assert names.lookups == [("rebind.example", picture_server.port)]
    assert connections.attempts == [(PUBLIC, picture_server.port)]
    assert picture_server.accepted == 0


def test_each_redirect_hop_is_resolved_once_and_pinned() -> None:
    # Two servers on two loopback addresses; the first redirects to a name only the test's resolver
    # knows. The request must land on the address that name resolved to, with the name as Host.
    with RawServer(serve_bytes(PICTURE), host="127.0.0.2") as second:
        location = f"http://second.example:{second.port}/pic.jpg"
        with RawServer(redirect_to(location)) as first, loopback_only() as connections:
            names = NameTable({"first.example": [["127.0.0.1"]], "second.example": [["127.0.0.2"]]})
            url = f"http://first.example:{first.port}/start"
            assert fetch(url, limits(allow_private=True), resolver=names) == PICTURE
    assert names.lookups == [("first.example", first.port), ("second.example", second.port)]
    assert connections.attempts == [("127.0.0.1", first.port), ("127.0.0.2", second.port)]
    assert header(first.request_heads[0], "Host") == f"first.example:{first.port}"
    assert header(second.request_heads[0], "Host") == f"second.example:{second.port}"


def test_a_redirect_is_checked_before_it_is_followed() -> None:
    with RawServer(redirect_to("file:///etc/passwd")) as first:
        with pytest.raises(InvalidInput, match="unsupported URL 'file:"):
            fetch(f"http://127.0.0.1:{first.port}/", limits(allow_private=True))
    assert first.accepted == 1


def test_a_host_whose_first_address_fails_is_tried_at_the_next_checked_one() -> None:
    # Nothing listens on 127.0.0.3, so that connection is refused; the next checked address serves.
    names = NameTable({"two.example": [["127.0.0.3", "127.0.0.1"]]})
    with RawServer(serve_bytes(PICTURE), host="127.0.0.1") as server, loopback_only() as connections:
        got = fetch(f"http://two.example:{server.port}/", limits(allow_private=True), resolver=names)
    assert got == PICTURE
    assert connections.attempts == [("127.0.0.3", server.port), ("127.0.0.1", server.port)]
