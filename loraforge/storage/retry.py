"""Object-store calls retried on transient errors, with a doubling wait; every other error translated at once.

Transient (`is_transient`): the server could not be reached, or said it cannot serve *now* — connection
refused or reset, a timeout, HTTP 429/500/502/503/504, and the S3 codes SlowDown, InternalError,
ServiceUnavailable, RequestTimeout and the throttling family. Such a call may succeed if made again.

Never retried: answers about the request itself — 404 NoSuchKey, 403 AccessDenied, a bad request or key.
Making the same call again cannot change them.

S3Store switches off the minio SDK's own urllib3 retry (which silently retries connection errors and 5xx
five times), so this module is the one retry loop: bounded by the settings, and logged.
"""

from __future__ import annotations

import http.client
import logging
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from loraforge.errors import LoraForgeError, NotFound, StorageError, StorageUnavailable

log = logging.getLogger(__name__)
T = TypeVar("T")

MISSING_CODES = frozenset({"NoSuchKey", "NoSuchObject", "NotFound", "ResourceNotFound"})
TRANSIENT_CODES = frozenset(
    {
        "SlowDown",
        "InternalError",
        "ServiceUnavailable",
        "RequestTimeout",
        "RequestTimeoutException",
        "PriorRequestNotComplete",
        "Throttling",
        "ThrottlingException",
        "RequestThrottled",
        "RequestLimitExceeded",
        "TooManyRequestsException",
        "BandwidthLimitExceeded",
    }
)
TRANSIENT_STATUS = frozenset({429, 500, 502, 503, 504})


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently one call is retried."""

    retries: int = 5
    backoff_s: float = 0.5
    max_backoff_s: float = 8.0

    def delay(self, retry: int) -> float:
        """The wait before retry number `retry` (1-based): backoff_s, doubling, at most max_backoff_s."""
        return float(min(self.max_backoff_s, self.backoff_s * 2 ** (retry - 1)))


def is_transient(exc: BaseException) -> bool:
    """Whether the same call may succeed later: the store unreachable, overloaded or failing inside."""
    from minio.error import InvalidResponseError, S3Error, ServerError
    from urllib3.exceptions import MaxRetryError, NewConnectionError, ProtocolError
    from urllib3.exceptions import TimeoutError as Urllib3Timeout

    if isinstance(exc, S3Error):
        return exc.code in TRANSIENT_CODES or _status(exc) in TRANSIENT_STATUS
    if isinstance(exc, ServerError):
        return exc.status_code in TRANSIENT_STATUS
    if isinstance(exc, InvalidResponseError):
        # A non-XML reply: typically a proxy or load balancer in front of the store (502/503 pages).
        return _status(exc) in TRANSIENT_STATUS
    if isinstance(exc, MaxRetryError):
        return exc.reason is not None and is_transient(exc.reason)
    # ConnectionError covers refused, reset, aborted and broken pipe; TimeoutError is socket.timeout.
    transport = (NewConnectionError, ProtocolError, Urllib3Timeout, http.client.IncompleteRead)
    return isinstance(exc, (*transport, ConnectionError, TimeoutError))


def translate(exc: BaseException, what: str, endpoint: str) -> LoraForgeError | None:
    """The LoRA Forge error for a client-library error; None for anything that is not the store's doing."""
    from minio.error import MinioException, S3Error
    from urllib3.exceptions import HTTPError

    if isinstance(exc, S3Error) and exc.code in MISSING_CODES:
        return NotFound(f"object {what} not found")
    if is_transient(exc):
        return StorageUnavailable(f"object store {endpoint} unavailable for {what}: {describe(exc)}")
    if isinstance(exc, MinioException | HTTPError | OSError):
        return StorageError(f"object store error on {what}: {describe(exc)}")
    return None


def describe(exc: BaseException) -> str:
    """A short reason: the S3 code or HTTP status, or the connection error without urllib3's object reprs."""
    from minio.error import InvalidResponseError, S3Error, ServerError
    from urllib3.exceptions import MaxRetryError

    if isinstance(exc, S3Error):
        return f"{exc.code} (HTTP {_status(exc)}): {exc.message}"
    if isinstance(exc, ServerError):
        return f"HTTP {exc.status_code}"
    if isinstance(exc, InvalidResponseError):
        return f"HTTP {_status(exc)} with a non-S3 reply"
    if isinstance(exc, MaxRetryError) and exc.reason is not None:
        return describe(exc.reason)
    # urllib3 prefixes the connection's repr; the endpoint is named elsewhere in the message.
    text = re.sub(
        r"<[^<>]* object at 0x[0-9a-f]+>:?\s*|HTTPS?Connection\(host=[^)]*\):\s*", "", str(exc)
    ).strip()
    return f"{exc.__class__.__name__}: {text}" if text else exc.__class__.__name__


def _status(exc: BaseException) -> int | None:
    response = getattr(exc, "response", None)
    if response is not None:
        return getattr(response, "status", None)
    code = getattr(exc, "_code", None)  # InvalidResponseError keeps the HTTP status here only
    return code if isinstance(code, int) else None


@dataclass
class Retrier:
    """Runs one store's calls: transient errors are retried with back-off, other errors translated at once.

    Once a call has used up its retries the store is taken to be down, and later calls are made once,
    without waiting, until one succeeds: during a long outage a worker with many pictures to store then
    fails each in a moment instead of sitting through every picture's back-off (the shard is retried
    later as a whole).
    """

    policy: RetryPolicy
    endpoint: str
    sleep: Callable[[float], None] = time.sleep
    _down: threading.Event = field(default_factory=threading.Event)

    @property
    def down(self) -> bool:
        return self._down.is_set()

    def call(self, what: str, operation: Callable[[], T], *, rewind: Callable[[], bool] | None = None) -> T:
        """`operation()`, retried on transient errors. `rewind` prepares a retry of a call that consumed
        a stream, and returns False when it cannot (the call is then made once)."""
        attempts = 1 if self.down else self.policy.retries + 1
        attempt = 0
        while True:
            attempt += 1
            try:
                result = operation()
            except Exception as exc:
                error = translate(exc, what, self.endpoint)
                if error is None:
                    raise
                if not isinstance(error, StorageUnavailable):
                    raise error from exc
                if attempt >= attempts or (rewind is not None and not rewind()):
                    raise self._give_up(error, attempt) from exc
                self._wait(what, exc, attempt, attempts)
            else:
                if self.down:
                    self._down.clear()
                    log.warning("object store %s answers again", self.endpoint)
                return result

    def _wait(self, what: str, exc: BaseException, attempt: int, attempts: int) -> None:
        delay = self.policy.delay(attempt)
        log.warning(
            "object store %s: %s failed (%s); retry %d of %d in %.2f s",
            self.endpoint,
            what,
            describe(exc),
            attempt,
            attempts - 1,
            delay,
        )
        self.sleep(delay)

    def _give_up(self, error: StorageUnavailable, attempt: int) -> StorageUnavailable:
        was_down = self.down
        self._down.set()
        if was_down:
            note = "still unavailable after an earlier call used up its retries; tried once"
        else:
            note = f"gave up after {attempt} attempt{'s' if attempt > 1 else ''}"
        log.error("%s (%s)", error, note)
        return StorageUnavailable(f"{error} ({note})")
