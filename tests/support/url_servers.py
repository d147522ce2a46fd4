"""Hostile and ordinary HTTP(S) servers on loopback, written on raw sockets so they can misbehave exactly.

A RawServer accepts connections in a thread and hands each to a function of its own; it counts what it
accepted and keeps each request head it read, so tests can assert that a server was, or was never, reached.
Also here: a resolver that knows only the names a test gives it, gzip/deflate bombs, and a throwaway
certificate authority for TLS tests.
"""

from __future__ import annotations

import datetime
import functools
import ipaddress
import socket
import ssl
import threading
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

Handler = Callable[[socket.socket, "RawServer"], None]


class RawServer:
    """A TCP server on a loopback address; each connection runs handler(conn, server) in its own thread."""

    def __init__(
        self, handler: Handler, host: str = "127.0.0.1", *, tls: ssl.SSLContext | None = None
    ) -> None:
        self.handler = handler
        self.host = host
        self.tls = tls
        self.stopping = threading.Event()
        self.accepted = 0
        self.request_heads: list[bytes] = []
        self.server_names: list[str | None] = []
        self._listener = socket.create_server((host, 0))
        self.port: int = self._listener.getsockname()[1]
        self._threads: list[threading.Thread] = []
        if tls is not None:
            tls.sni_callback = self._record_server_name

    def _record_server_name(self, _sock: ssl.SSLObject, name: str | None, _ctx: ssl.SSLContext) -> None:
        self.server_names.append(name)

    def __enter__(self) -> RawServer:
        acceptor = threading.Thread(target=self._accept, daemon=True)
        acceptor.start()
        self._threads.append(acceptor)
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.stopping.set()
        for thread in self._threads:
            thread.join(timeout=5)
        self._listener.close()

    def _accept(self) -> None:
        # accept() in short waits: closing a listener does not wake a thread blocked on it
        self._listener.settimeout(0.05)
        while not self.stopping.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return  # the listener was closed
            conn.settimeout(None)
            self.accepted += 1
            worker = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            worker.start()
            self._threads.append(worker)

    def _serve(self, conn: socket.socket) -> None:
        try:
            if self.tls is not None:
                conn = self.tls.wrap_socket(conn, server_side=True)
            self.handler(conn, self)
        except (OSError, ssl.SSLError):
            pass  # the client went away or refused our certificate: both are outcomes tests look at
        finally:
            conn.close()

    def read_request_head(self, conn: socket.socket) -> bytes:
        """Read up to the blank line ending the request headers, and keep it."""
        head = b""
        while b"\r\n\r\n" not in head:
            data = conn.recv(4096)
            if not data:
                break
            head += data
        self.request_heads.append(head)
        return head

    def wait(self, seconds: float) -> bool:
        """Sleep, or return True at once if the server is stopping."""
        return self.stopping.wait(seconds)


def header(head: bytes, name: str) -> str | None:
    """The value of one request header of a head read by read_request_head."""
    for line in head.decode("latin-1").split("\r\n")[1:]:
        key, _, value = line.partition(":")
        if key.strip().lower() == name.lower():
            return value.strip()
    return None


def respond(conn: socket.socket, status: str, headers: dict[str, str], body: bytes = b"") -> None:
    lines = [f"HTTP/1.1 {status}", *(f"{k}: {v}" for k, v in headers.items()), "Connection: close"]
    conn.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)


def serve_bytes(body: bytes, content_type: str = "image/jpeg", **extra: str) -> Handler:
    """A handler answering every request with body (extra headers given as Content_Encoding="gzip")."""
    headers = {"Content-Type": content_type, "Content-Length": str(len(body))}
    headers.update({name.replace("_", "-"): value for name, value in extra.items()})

    def handle(conn: socket.socket, server: RawServer) -> None:
        server.read_request_head(conn)
        respond(conn, "200 OK", headers, body)

    return handle


def redirect_to(location: str) -> Handler:
    def handle(conn: socket.socket, server: RawServer) -> None:
        server.read_request_head(conn)
        respond(conn, "302 Found", {"Location": location, "Content-Length": "0"})

    return handle


def drip_body(interval_s: float) -> Handler:
    """Complete headers promising 1 MB, then one body byte every interval_s, until the client leaves."""

    def handle(conn: socket.socket, server: RawServer) -> None:
        server.read_request_head(conn)
        respond(conn, "200 OK", {"Content-Type": "image/jpeg", "Content-Length": str(1 << 20)})
        while not server.wait(interval_s):
            conn.sendall(b"\xff")

    return handle


def drip_headers(interval_s: float) -> Handler:
    """A status line, then a never-ending header, one byte every interval_s."""

    def handle(conn: socket.socket, server: RawServer) -> None:
        server.read_request_head(conn)
        conn.sendall(b"HTTP/1.1 200 OK\r\nX-Slow: ")
        while not server.wait(interval_s):
            conn.sendall(b"a")

    return handle


def silent(conn: socket.socket, server: RawServer) -> None:
    """Accept and say nothing (for TLS: never answer the handshake) until the server stops."""
    server.wait(3600)


def endless_body(conn: socket.socket, server: RawServer) -> None:
    """An image with no Content-Length and no end: 64 KiB blocks until the client leaves."""
    server.read_request_head(conn)
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: image/jpeg\r\nConnection: close\r\n\r\n")
    block = b"\xff" * 65536
    while not server.stopping.is_set():
        conn.sendall(block)


class NameTable:
    """A resolver in socket.getaddrinfo's shape that knows only the names it is given, and logs each lookup.

    A name maps to a list of answers, one list of addresses per lookup; the last list repeats (so a name
    can answer a public address first and 127.0.0.1 afterwards, as in DNS rebinding).
    """

    def __init__(self, names: dict[str, list[list[str]]]) -> None:
        self.names = names
        self.lookups: list[tuple[str, int]] = []

    def __call__(
        self, host: str, port: int, family: int = 0, type: int = 0, proto: int = 0, flags: int = 0
    ) -> list[tuple[socket.AddressFamily, socket.SocketKind, int, str, tuple[str, int]]]:
        self.lookups.append((host, port))
        if host not in self.names:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        answers = self.names[host]
        addresses = answers[min(len(self.lookups_of(host)) - 1, len(answers) - 1)]
        return [
            (socket.AF_INET6 if ":" in a else socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port))
            for a in addresses
        ]

    def lookups_of(self, host: str) -> list[tuple[str, int]]:
        return [lookup for lookup in self.lookups if lookup[0] == host]


@functools.cache
def compression_bomb(decoded_bytes: int, encoding: str = "gzip") -> bytes:
    """decoded_bytes of zeros, gzip- or zlib(deflate)-compressed: about a thousandth of that on the wire."""
    wbits = 16 + zlib.MAX_WBITS if encoding == "gzip" else zlib.MAX_WBITS
    compressor = zlib.compressobj(9, zlib.DEFLATED, wbits)
    zeros = bytes(1 << 20)
    parts = [compressor.compress(zeros) for _ in range(decoded_bytes >> 20)]
    parts.append(compressor.flush())
    return b"".join(parts)


@dataclass(frozen=True)
class LocalCA:
    """A certificate authority made for one test, and a server certificate it signed."""

    ca_file: Path
    cert_file: Path
    key_file: Path

    def server_context(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.cert_file, self.key_file)
        return context

    def client_context(self) -> ssl.SSLContext:
        """A client context that trusts only this CA, with hostname checking on (the default)."""
        return ssl.create_default_context(cafile=str(self.ca_file))


def make_test_ca(folder: Path, server_names: list[str]) -> LocalCA:
    """A fresh CA and a server certificate for server_names (DNS names or IP addresses)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "loraforge test CA")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    alt_names: list[x509.GeneralName] = []
    for name in server_names:
        try:
            alt_names.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            alt_names.append(x509.DNSName(name))
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, server_names[0])]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    files = LocalCA(folder / "ca.pem", folder / "server.pem", folder / "server.key")
    files.ca_file.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    files.cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    files.key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return files
