"""What a URL fetch spends: one wall-clock deadline over connect, TLS, headers and body, and a cap on the
decoded body whatever the Content-Encoding. Also HTTPS to a pinned address: SNI and the certificate check
are for the URL's name. Every server is real, on loopback, and misbehaves on purpose."""

from __future__ import annotations

import dataclasses
import gzip
import socket
import time
import tracemalloc
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from loraforge.config import Settings
from loraforge.errors import InvalidInput
from loraforge.sources import SourceLimits
from loraforge.sources.urls import DEFAULT_DEADLINE_S, fetch
from tests.support.images import jpeg_bytes
from tests.support.url_servers import (
    Handler,
    LocalCA,
    NameTable,
    RawServer,
    compression_bomb,
    drip_body,
    drip_headers,
    endless_body,
    header,
    make_test_ca,
    respond,
    serve_bytes,
    silent,
)

PICTURE = jpeg_bytes(seed=21)
DEADLINE_S = 1.5
# Thread scheduling on a loaded machine; a fetch that ignored the deadline would run for minutes.
MARGIN_S = 1.0
CAP = 5 * 1024 * 1024

LIMITS = SourceLimits(
    max_file_bytes=CAP,
    max_zip_ratio=100,
    max_zip_total_bytes=10**9,
    url_timeout_s=10,  # every single wait below is shorter than this: only the overall deadline can end them
    url_max_redirects=2,
    allow_private_urls=True,
)


def _fetch_timed(url: str, resolver: NameTable | None = None) -> tuple[InvalidInput, float]:
    started = time.monotonic()
    with pytest.raises(InvalidInput) as refused:
        if resolver is None:
            fetch(url, LIMITS, deadline_s=DEADLINE_S)
        else:
            fetch(url, LIMITS, deadline_s=DEADLINE_S, resolver=resolver)
    return refused.value, time.monotonic() - started


@pytest.mark.parametrize(
    "handler",
    [drip_body(0.25), drip_headers(0.25)],
    ids=["one body byte every 0.25 s", "one header byte every 0.25 s"],
)
def test_a_drip_feed_is_cut_off_at_the_deadline(handler: Handler) -> None:
    with RawServer(handler) as server:
        error, elapsed = _fetch_timed(f"http://127.0.0.1:{server.port}/x.jpg")
    assert "deadline" in str(error)
    assert DEADLINE_S - 0.05 <= elapsed < DEADLINE_S + MARGIN_S


def test_a_tls_handshake_that_never_answers_is_cut_off_at_the_deadline() -> None:
    with RawServer(silent) as server:
        names = NameTable({"pics.example": [["127.0.0.1"]]})
        error, elapsed = _fetch_timed(f"https://pics.example:{server.port}/x.jpg", resolver=names)
    assert "deadline" in str(error)
    assert elapsed < DEADLINE_S + MARGIN_S


def test_a_connect_that_never_completes_is_cut_off_at_the_deadline() -> None:
    # A listener whose accept queue is full drops new SYNs: connect() waits for an answer that never comes.
    listener = socket.create_server(("127.0.0.1", 0), backlog=0)
    port = listener.getsockname()[1]
    fillers = []
    try:
        for _ in range(4):
            filler = socket.socket()
            filler.setblocking(False)
            filler.connect_ex(("127.0.0.1", port))
            fillers.append(filler)
        time.sleep(0.1)
        error, elapsed = _fetch_timed(f"http://127.0.0.1:{port}/x.jpg")
    finally:
        for filler in fillers:
            filler.close()
        listener.close()
    assert "deadline" in str(error)
    assert elapsed < DEADLINE_S + MARGIN_S


def test_the_deadline_spans_redirects() -> None:
    # Each hop is quick, but the hop after the redirect drips: the clock started at the first request.
    with RawServer(drip_body(0.25)) as slow, RawServer(_redirect_after(0.6, slow.port)) as first:
        error, elapsed = _fetch_timed(f"http://127.0.0.1:{first.port}/")
    assert "deadline" in str(error)
    assert elapsed < DEADLINE_S + MARGIN_S
    assert slow.accepted == 1


def _redirect_after(delay_s: float, port: int) -> Handler:
    def handle(conn: socket.socket, server: RawServer) -> None:
        server.read_request_head(conn)
        server.wait(delay_s)
        respond(conn, "302 Found", {"Location": f"http://127.0.0.1:{port}/x.jpg", "Content-Length": "0"})

    return handle


def test_the_deadline_comes_from_the_limits_and_defaults_to_the_setting() -> None:
    assert Settings().url_deadline_s == DEFAULT_DEADLINE_S
    assert (
        SourceLimits(max_file_bytes=1, max_zip_ratio=2, max_zip_total_bytes=3).url_deadline_s
        == DEFAULT_DEADLINE_S
    )
    limits = dataclasses.replace(LIMITS, url_deadline_s=DEADLINE_S)
    with RawServer(drip_body(0.25)) as server:
        started = time.monotonic()
        with pytest.raises(InvalidInput, match=f"within the {DEADLINE_S:g} s deadline"):
            fetch(f"http://127.0.0.1:{server.port}/x.jpg", limits)
    assert time.monotonic() - started < DEADLINE_S + MARGIN_S


@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
def test_a_compression_bomb_stops_at_the_cap_without_inflating(encoding: str) -> None:
    bomb = compression_bomb(256 * 1024 * 1024, encoding)  # 256 MiB of zeros in about 250 KiB
    assert len(bomb) < CAP // 10
    with RawServer(serve_bytes(bomb, Content_Encoding=encoding)) as server:
        tracemalloc.start()
        try:
            with pytest.raises(InvalidInput, match=f"more than {CAP:,} bytes once {encoding}-decoded"):
                fetch(f"http://127.0.0.1:{server.port}/bomb.jpg", LIMITS)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    # The body so far plus one bounded piece; inflating a single 64 KiB read of this bomb would be 64 MiB.
    assert peak < 3 * CAP


def test_a_body_with_no_length_and_no_end_stops_at_the_cap() -> None:
    with RawServer(endless_body) as server:
        tracemalloc.start()
        try:
            with pytest.raises(InvalidInput, match=f"more than {CAP:,} bytes"):
                fetch(f"http://127.0.0.1:{server.port}/endless.jpg", LIMITS)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert peak < 3 * CAP


def test_an_encoded_picture_is_decoded() -> None:
    for encoding, body in [("gzip", gzip.compress(PICTURE)), ("deflate", zlib.compress(PICTURE))]:
        with RawServer(serve_bytes(body, Content_Encoding=encoding)) as server:
            assert fetch(f"http://127.0.0.1:{server.port}/x.jpg", LIMITS) == PICTURE
        # the request asked for no encoding; the server sent one anyway and it was undone
        assert header(server.request_heads[0], "Accept-Encoding") == "identity"
    raw_deflate = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS)
    body = raw_deflate.compress(PICTURE) + raw_deflate.flush()
    with RawServer(serve_bytes(body, Content_Encoding="deflate")) as server:
        assert fetch(f"http://127.0.0.1:{server.port}/x.jpg", LIMITS) == PICTURE


@pytest.mark.parametrize(
    ("body", "encoding", "reason"),
    [
        (b"\x00" * 100, "br", "unsupported content encoding 'br'"),
        (b"\x00" * 100, "gzip, gzip", "unsupported content encoding"),
        (b"this is not gzip", "gzip", "corrupt gzip body"),
        (gzip.compress(PICTURE)[:-20], "gzip", "gzip body is cut short"),
    ],
)
def test_bad_encodings_are_refused(body: bytes, encoding: str, reason: str) -> None:
    with RawServer(serve_bytes(body, Content_Encoding=encoding)) as server:
        with pytest.raises(InvalidInput, match=reason):
            fetch(f"http://127.0.0.1:{server.port}/x.jpg", LIMITS)


@pytest.fixture
def test_ca(tmp_path: Path) -> LocalCA:
    return make_test_ca(tmp_path, ["pics.example"])


@pytest.fixture
def tls_server(test_ca: LocalCA) -> Iterator[RawServer]:
    with RawServer(serve_bytes(PICTURE), tls=test_ca.server_context()) as server:
        yield server


def test_https_to_a_pinned_address_uses_the_name_for_sni_host_and_certificate(
    test_ca: LocalCA, tls_server: RawServer
) -> None:
    names = NameTable({"pics.example": [["127.0.0.1"]]})
    url = f"https://pics.example:{tls_server.port}/x.jpg"
    assert fetch(url, LIMITS, resolver=names, ssl_context=test_ca.client_context()) == PICTURE
    assert tls_server.server_names == ["pics.example"]
    assert header(tls_server.request_heads[0], "Host") == f"pics.example:{tls_server.port}"


def test_https_certificate_for_another_name_is_refused(test_ca: LocalCA, tls_server: RawServer) -> None:
    # The same server reached under a name its certificate does not carry: verification must fail even
    # though the address is the one the name resolved to.
    names = NameTable({"other.example": [["127.0.0.1"]]})
    url = f"https://other.example:{tls_server.port}/x.jpg"
    with pytest.raises(InvalidInput, match="cannot fetch .*CERTIFICATE_VERIFY_FAILED"):
        fetch(url, LIMITS, resolver=names, ssl_context=test_ca.client_context())
    assert tls_server.request_heads == []


def test_https_with_an_untrusted_certificate_is_refused(tls_server: RawServer) -> None:
    # The default certificate store does not know the test CA.
    names = NameTable({"pics.example": [["127.0.0.1"]]})
    with pytest.raises(InvalidInput, match="CERTIFICATE_VERIFY_FAILED"):
        fetch(f"https://pics.example:{tls_server.port}/x.jpg", LIMITS, resolver=names)
    assert tls_server.request_heads == []
