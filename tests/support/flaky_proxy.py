"""A TCP proxy in front of a server, which a test can take down and bring back on the same port.

Down, it behaves as the server's host does when the server process is killed: open connections are reset
and new ones are refused. Back up, it forwards again to the same server, whose data (moto keeps it in
memory) is untouched. From the client's side that is an honest outage of the S3 endpoint.
"""

from __future__ import annotations

import socket
import struct
import threading
from collections.abc import Callable


class FlakyProxy:
    def __init__(self, upstream: str) -> None:
        host, port = upstream.rsplit(":", 1)
        self.upstream = (host, int(port))
        self.port = 0
        self.outages = 0
        self._listener: socket.socket | None = None
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._trigger: tuple[bytes, int, float | None] | None = None
        self.triggered = threading.Event()

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def is_up(self) -> bool:
        return self._listener is not None

    def start(self) -> FlakyProxy:
        """Listen (on a free port the first time, on the same port after an outage) and forward."""
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self.port = listener.getsockname()[1]
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), name="flaky-proxy", daemon=True).start()
        return self

    def go_down(self) -> None:
        """Refuse new connections and reset the open ones."""
        with self._lock:
            listener, self._listener = self._listener, None
            if listener is None:
                return
            self.outages += 1
            # shutdown() wakes the accept() blocked in the other thread; close() alone would not.
            listener.shutdown(socket.SHUT_RDWR)
            listener.close()
            for sock in list(self._open):
                _reset(sock)
            self._open.clear()

    def come_back(self) -> None:
        with self._lock:
            if self._listener is None:
                self.start()

    def outage(self, seconds: float) -> threading.Timer:
        """Go down now and come back after `seconds`, in the background."""
        self.go_down()
        timer = threading.Timer(seconds, self.come_back)
        timer.daemon = True
        timer.start()
        return timer

    def outage_on_request(self, marker: bytes, seconds: float | None, *, skip: int = 0) -> None:
        """Go down for `seconds` (None: until come_back()) the moment a client sends bytes containing
        `marker` for the time number `skip + 1`, before they reach the server: the outage then meets
        that very call, however the client's work is timed. Once only."""
        self._trigger = (marker, skip, seconds)

    def close(self) -> None:
        self.go_down()

    def _intercept(self, data: bytes) -> bool:
        """Whether these client bytes set off the armed outage (they are then never forwarded)."""
        with self._lock:
            trigger = self._trigger
            if trigger is None or trigger[0] not in data:
                return False
            marker, skip, seconds = trigger
            self._trigger = (marker, skip - 1, seconds) if skip else None
            if skip:
                return False
        if seconds is None:
            self.go_down()
        else:
            self.outage(seconds)
        self.triggered.set()
        return True

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # the listener was shut down: an outage began
            try:
                server = socket.create_connection(self.upstream)
            except OSError:
                _reset(client)
                continue
            with self._lock:
                if self._listener is not listener:  # went down meanwhile
                    _reset(client)
                    _reset(server)
                    continue
                self._open.update((client, server))
            _pump_both(client, server, self._forget, self._intercept)

    def _forget(self, sock: socket.socket) -> None:
        with self._lock:
            self._open.discard(sock)


def _pump_both(
    client: socket.socket,
    server: socket.socket,
    forget: Callable[[socket.socket], None],
    intercept: Callable[[bytes], bool],
) -> None:
    """Copy bytes both ways; once both directions have ended, close the two sockets. Client bytes go
    through `intercept` first: True means the proxy went down on them, so they are dropped."""
    remaining = [2]
    lock = threading.Lock()

    def run(source: socket.socket, target: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                if source is client and intercept(data):
                    raise ConnectionResetError("the proxy went down on this request")
                target.sendall(data)
            target.shutdown(socket.SHUT_WR)
        except OSError:
            _reset(target)
        with lock:
            remaining[0] -= 1
            last = remaining[0] == 0
        if last:
            for sock in (client, server):
                forget(sock)
                sock.close()

    for source, target in ((client, server), (server, client)):
        threading.Thread(target=run, args=(source, target), name="flaky-proxy-pump", daemon=True).start()


def _reset(sock: socket.socket) -> None:
    """Close with RST rather than FIN: what a peer sees when the process behind a socket is killed."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()
    except OSError:
        pass
