"""S3Store against a real HTTP server that fails on purpose: which errors are retried, how often, how long."""

from __future__ import annotations

import io
import logging
import socket
import time
from collections.abc import Iterator

import pytest

from loraforge.errors import InvalidInput, NotFound, StorageError, StorageUnavailable
from loraforge.storage import StoreConfig
from loraforge.storage.retry import RetryPolicy
from loraforge.storage.s3 import S3Store
from tests.support.scripted_s3 import (
    BUCKET,
    ScriptedS3,
    dropped,
    html_page,
    list_page,
    s3_error,
    scripted_s3,
)

RETRIES = 3
BACKOFF_S = 0.01


@pytest.fixture
def server() -> Iterator[ScriptedS3]:
    with scripted_s3() as running:
        yield running


def store_at(endpoint: str, *, retries: int = RETRIES) -> tuple[S3Store, list[float]]:
    """An S3Store on the endpoint, and the list its retry waits are recorded in (they still happen)."""
    store = S3Store(
        StoreConfig(
            url=f"s3://{BUCKET}",
            endpoint=endpoint,
            access_key="key",
            secret_key="secret",
            secure=False,
            region="us-east-1",  # no region lookup: every request is one the test scripted
            retries=retries,
            retry_backoff_s=BACKOFF_S,
            retry_max_backoff_s=0.03,
            timeout_s=5,
        )
    )
    waits: list[float] = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        time.sleep(seconds)

    store.retrier.sleep = sleep
    return store, waits


@pytest.mark.parametrize(
    "failure",
    [
        s3_error(503, "SlowDown"),
        s3_error(503, "ServiceUnavailable"),
        s3_error(500, "InternalError"),
        html_page(502),
        html_page(504),
        dropped(),
    ],
    ids=["503-SlowDown", "503-ServiceUnavailable", "500-InternalError", "502-html", "504-html", "reset"],
)
def test_transient_errors_are_retried_until_the_store_answers(server: ScriptedS3, failure: object) -> None:
    store, waits = store_at(server.endpoint)
    server.stored = b"the picture"
    server.then(failure, failure)  # type: ignore[arg-type]
    assert store.get("originals/ab/abc") == b"the picture"
    assert len(server.object_requests()) == 3
    assert waits == [0.01, 0.02]  # doubling from the configured back-off


def test_a_store_failing_through_every_retry_raises_storage_unavailable(
    server: ScriptedS3, caplog: pytest.LogCaptureFixture
) -> None:
    store, waits = store_at(server.endpoint)
    server.then(*[s3_error(503, "SlowDown")] * (RETRIES + 1))
    with caplog.at_level(logging.WARNING, logger="loraforge.storage.retry"):
        with pytest.raises(StorageUnavailable) as raised:
            store.get("originals/ab/abc")
    assert len(server.object_requests()) == RETRIES + 1
    assert waits == [0.01, 0.02, 0.03]  # capped at the maximum back-off
    message = str(raised.value)
    assert server.endpoint in message and "originals/ab/abc" in message and "SlowDown" in message
    retries_logged = [r for r in caplog.records if "retry" in r.getMessage()]
    assert [r.levelno for r in retries_logged] == [logging.WARNING] * RETRIES
    assert "retry 1 of 3" in retries_logged[0].getMessage()


@pytest.mark.parametrize(
    ("failure", "error"),
    [
        (s3_error(404, "NoSuchKey"), NotFound),
        (s3_error(403, "AccessDenied"), StorageError),
        (s3_error(400, "InvalidArgument"), StorageError),
        (s3_error(501, "NotImplemented"), StorageError),
    ],
    ids=["404-NoSuchKey", "403-AccessDenied", "400-InvalidArgument", "501-NotImplemented"],
)
def test_client_errors_are_not_retried(server: ScriptedS3, failure: object, error: type[Exception]) -> None:
    store, waits = store_at(server.endpoint)
    server.then(failure)  # type: ignore[arg-type]
    with pytest.raises(error) as raised:
        store.get("originals/ab/abc")
    assert not isinstance(raised.value, StorageUnavailable)
    assert len(server.object_requests()) == 1
    assert waits == []


def test_a_missing_object_is_not_found_on_stat_too(server: ScriptedS3) -> None:
    store, _ = store_at(server.endpoint)
    server.then(s3_error(404, "NoSuchKey"))
    assert not store.exists("originals/ab/abc")
    assert len(server.object_requests()) == 1


def test_an_invalid_key_never_reaches_the_server(server: ScriptedS3) -> None:
    store, _ = store_at(server.endpoint)
    with pytest.raises(InvalidInput):
        store.get("../escape")
    assert server.requests == []


def test_the_sdk_hidden_retry_is_off(server: ScriptedS3) -> None:
    """With no retries configured a 503 reaches the server once (minio's own pool would send it 6 times)."""
    store, _ = store_at(server.endpoint, retries=0)
    server.then(s3_error(503, "SlowDown"), s3_error(503, "SlowDown"))
    with pytest.raises(StorageUnavailable):
        store.stat("originals/ab/abc")
    assert len(server.object_requests()) == 1


def test_a_retried_put_sends_the_whole_body_again(server: ScriptedS3) -> None:
    store, _ = store_at(server.endpoint)
    server.then(s3_error(503, "SlowDown"), dropped())
    store.put("originals/ab/abc", io.BytesIO(b"0123456789"), length=10)
    puts = [r for r in server.object_requests() if r.method == "PUT"]
    assert [r.body for r in puts] == [b"0123456789"] * 3
    assert server.stored == b"0123456789"


class _Socketlike(io.RawIOBase):
    """A readable stream that cannot seek, like a request body being received."""

    def __init__(self, data: bytes) -> None:
        self._data = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        chunk = self._data.read(len(buffer))
        buffer[: len(chunk)] = chunk
        return len(chunk)


def test_a_put_from_a_stream_that_cannot_rewind_is_tried_once(server: ScriptedS3) -> None:
    store, _ = store_at(server.endpoint)
    server.then(s3_error(503, "SlowDown"))
    with pytest.raises(StorageUnavailable):
        store.put("uploads/d/b/000001/x.jpg", _Socketlike(b"0123456789"), length=10)  # type: ignore[arg-type]
    assert len([r for r in server.object_requests() if r.method == "PUT"]) == 1


def test_once_retries_are_used_up_later_calls_try_once_until_one_succeeds(server: ScriptedS3) -> None:
    store, waits = store_at(server.endpoint)
    server.then(*[s3_error(503, "SlowDown")] * (RETRIES + 1))
    with pytest.raises(StorageUnavailable):
        store.get("originals/ab/a")
    asked = len(server.object_requests())

    server.then(s3_error(503, "SlowDown"))
    with pytest.raises(StorageUnavailable, match="tried once"):
        store.get("originals/ab/b")  # the store is known to be down: no second round of waiting
    assert len(server.object_requests()) == asked + 1

    assert store.get("originals/ab/c") == server.stored  # it answers again
    waits.clear()
    server.then(s3_error(503, "SlowDown"))
    assert store.get("originals/ab/d") == server.stored  # and calls are retried again
    assert waits == [0.01]


def test_connection_refused_is_retried_then_unavailable() -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    store, waits = store_at(f"127.0.0.1:{port}")
    with pytest.raises(StorageUnavailable, match="refused"):
        store.get("originals/ab/abc")
    assert waits == [0.01, 0.02, 0.03]


def test_a_list_failing_between_pages_resumes_after_the_last_key(
    server: ScriptedS3, monkeypatch: pytest.MonkeyPatch
) -> None:
    from loraforge.storage import s3

    monkeypatch.setattr(s3, "_LIST_PAGE", 2)  # pages of two keys, so three keys take two pages
    store, _ = store_at(server.endpoint)
    server.then(list_page(["a/1", "a/2"], truncated=True), dropped(), list_page(["a/3"], truncated=False))
    assert [info.key for info in store.list("a/")] == ["a/1", "a/2", "a/3"]
    lists = [r for r in server.object_requests() if "list-type" in r.query]
    assert [r.query.get("start-after") for r in lists] == [None, ["a/2"], ["a/2"]]


def test_retry_delays_double_up_to_the_cap() -> None:
    policy = RetryPolicy(retries=6, backoff_s=0.5, max_backoff_s=8.0)
    assert [policy.delay(n) for n in range(1, 7)] == [0.5, 1.0, 2.0, 4.0, 8.0, 8.0]


def test_retry_settings_reach_the_store_config(monkeypatch: pytest.MonkeyPatch) -> None:
    from loraforge.config import load_settings
    from loraforge.errors import ConfigError

    monkeypatch.setenv("LORAFORGE_STORAGE_RETRIES", "2")
    monkeypatch.setenv("LORAFORGE_STORAGE_RETRY_BACKOFF_S", "0.25")
    monkeypatch.setenv("LORAFORGE_STORAGE_RETRY_MAX_BACKOFF_S", "1")
    monkeypatch.setenv("LORAFORGE_STORAGE_TIMEOUT_S", "7")
    config = StoreConfig.from_settings(load_settings())
    assert (config.retries, config.retry_backoff_s, config.retry_max_backoff_s, config.timeout_s) == (
        2,
        0.25,
        1.0,
        7.0,
    )
    monkeypatch.setenv("LORAFORGE_STORAGE_RETRIES", "-1")
    with pytest.raises(ConfigError, match="LORAFORGE_STORAGE_RETRIES"):
        load_settings()
