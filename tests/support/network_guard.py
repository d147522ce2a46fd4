"""Record, and hold to loopback, the socket connections one test thread makes, via Python's audit hooks.

Every socket.connect() raises the "socket.connect" audit event before the connection is attempted; a hook
that raises there stops the connection. Tests use this to see the exact address a fetch connected to, and
to make sure a fetch told to go to a public address never leaves the machine.
"""

from __future__ import annotations

import errno
import ipaddress
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

_local = threading.local()
_install_lock = threading.Lock()
_installed = False


@dataclass
class ConnectLog:
    """The (host, port) of every connect attempted while the guard was on, refused ones included."""

    attempts: list[tuple[str, int]] = field(default_factory=list)

    @property
    def hosts(self) -> list[str]:
        return [host for host, _port in self.attempts]


def _hook(event: str, args: tuple[object, ...]) -> None:
    if event != "socket.connect":
        return
    log = getattr(_local, "log", None)
    if log is None:
        return  # not a guarded thread
    address = args[1]
    if not (isinstance(address, tuple) and isinstance(address[0], str)):
        return  # a Unix socket: not network
    host, port = address[0], int(address[1])
    log.attempts.append((host, port))
    if not ipaddress.ip_address(host.split("%")[0]).is_loopback:
        raise ConnectionRefusedError(errno.ECONNREFUSED, f"network guard: tests do not connect to {host}")


@contextmanager
def loopback_only() -> Iterator[ConnectLog]:
    """Within the block, this thread's connections are logged and any not to a loopback address refused."""
    global _installed
    with _install_lock:
        if not _installed:
            sys.addaudithook(_hook)  # hooks cannot be removed; outside a guarded block it does nothing
            _installed = True
    log = ConnectLog()
    _local.log = log
    try:
        yield log
    finally:
        _local.log = None
