"""ObjectStore on S3 / MinIO through the minio SDK; streams large objects in multipart uploads.

Every call goes through a Retrier (loraforge.storage.retry): transient errors are retried with back-off,
client errors (404, 403, bad input) are not. The SDK's own hidden urllib3 retry is switched off.
"""

from __future__ import annotations

import functools
import io
import itertools
import os
import shutil
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any, BinaryIO, cast

from loraforge.errors import NotFound, StorageError
from loraforge.storage.base import ObjectInfo, StoreConfig, check_key
from loraforge.storage.retry import Retrier, RetryPolicy

_PART_SIZE = 16 * 1024 * 1024
_LIST_PAGE = 1000
"""Keys per list request (the S3 maximum): a failed page is asked again from the last key listed."""


class S3Store:
    """Objects in one bucket of an S3-compatible server; the bucket is created on first use."""

    def __init__(self, config: StoreConfig) -> None:
        from minio import Minio

        self.bucket = config.url[len("s3://") :].strip("/")
        if not config.endpoint:
            raise StorageError("an S3 store needs an endpoint (LORAFORGE_S3_ENDPOINT)")
        self.client = Minio(
            config.endpoint,
            access_key=config.access_key,
            secret_key=config.secret_key,
            secure=config.secure,
            region=config.region,
            http_client=_http_pool(config.timeout_s),
        )
        self.retrier = Retrier(
            RetryPolicy(config.retries, config.retry_backoff_s, config.retry_max_backoff_s), config.endpoint
        )
        self._bucket_ready = False

    def _ensure_bucket(self) -> None:
        if self._bucket_ready:
            return

        def create_if_missing() -> None:
            if not self.client.bucket_exists(self.bucket):
                self.client.make_bucket(self.bucket)

        self.retrier.call(f"bucket {self.bucket}", create_if_missing)
        self._bucket_ready = True

    def put(
        self,
        key: str,
        data: bytes | BinaryIO,
        *,
        length: int | None = None,
        content_type: str = "application/octet-stream",
    ) -> ObjectInfo:
        check_key(key)
        self._ensure_bucket()
        if isinstance(data, bytes | bytearray | memoryview):
            stream: BinaryIO = io.BytesIO(data)
            length = len(data)
        else:
            stream = data
        start = _position(stream)

        def rewind() -> bool:
            # A retry must send the same bytes again: possible for bytes and files, not for a socket.
            if start is None:
                return False
            stream.seek(start)
            return True

        result = self.retrier.call(
            key,
            lambda: self.client.put_object(
                self.bucket,
                key,
                stream,
                length=length if length is not None else -1,
                part_size=_PART_SIZE,
                content_type=content_type,
            ),
            rewind=rewind,
        )
        size = length if length is not None else self.stat(key).size
        return ObjectInfo(key=key, size=size, etag=result.etag)

    def put_file(self, key: str, path: Path, *, content_type: str = "application/octet-stream") -> ObjectInfo:
        with open(path, "rb") as stream:
            return self.put(key, stream, length=Path(path).stat().st_size, content_type=content_type)

    def get(self, key: str) -> bytes:
        check_key(key)
        self._ensure_bucket()

        def fetch() -> bytes:
            # Request and body in one retried call: a connection reset half-way through is retried too.
            response = self.client.get_object(self.bucket, key)
            try:
                return cast(bytes, response.read())
            finally:
                response.close()
                response.release_conn()

        return self.retrier.call(key, fetch)

    def open(self, key: str) -> BinaryIO:
        """A stream of the object; the request is retried, reading the stream is the caller's."""
        check_key(key)
        self._ensure_bucket()
        response = self.retrier.call(key, lambda: self.client.get_object(self.bucket, key))
        return cast(BinaryIO, _ResponseStream(response))

    def download(self, key: str, path: Path) -> None:
        with self.open(key) as source, open(path, "wb") as target:
            shutil.copyfileobj(source, target, 1024 * 1024)

    def stat(self, key: str) -> ObjectInfo:
        check_key(key)
        self._ensure_bucket()
        info = self.retrier.call(key, lambda: self.client.stat_object(self.bucket, key))
        return ObjectInfo(key=key, size=info.size or 0, etag=info.etag)

    def exists(self, key: str) -> bool:
        try:
            self.stat(key)
        except NotFound:
            return False
        return True

    def delete(self, key: str) -> None:
        check_key(key)
        self._ensure_bucket()
        self.retrier.call(key, lambda: self.client.remove_object(self.bucket, key))

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        self._ensure_bucket()
        after: str | None = None
        while True:
            next_page = functools.partial(_list_page, self.client, self.bucket, prefix, after)
            page = self.retrier.call(f"list {prefix}", next_page)
            yield from page
            if len(page) < _LIST_PAGE:
                return
            after = page[-1].key

    def presigned_url(self, key: str, *, expires_s: int = 3600, method: str = "GET") -> str:
        check_key(key)
        self._ensure_bucket()
        # Signing may first ask the server for the bucket's region.
        return self.retrier.call(
            key,
            lambda: self.client.get_presigned_url(
                method, self.bucket, key, expires=timedelta(seconds=expires_s)
            ),
        )


def _http_pool(timeout_s: float) -> Any:
    """The SDK's default connection pool, less its hidden retry: S3Store's Retrier is the only one."""
    import certifi
    import urllib3

    return urllib3.PoolManager(
        timeout=urllib3.Timeout(connect=timeout_s, read=timeout_s),
        maxsize=10,
        cert_reqs="CERT_REQUIRED",
        ca_certs=os.environ.get("SSL_CERT_FILE") or certifi.where(),
        retries=False,
    )


def _list_page(client: Any, bucket: str, prefix: str, after: str | None) -> list[ObjectInfo]:
    """One list request's keys: the SDK fetches a next page only when iterated past this one."""
    listing = client.list_objects(bucket, prefix=prefix, recursive=True, start_after=after)
    return [
        ObjectInfo(key=obj.object_name or "", size=obj.size or 0, etag=obj.etag, modified=obj.last_modified)
        for obj in itertools.islice(listing, _LIST_PAGE)
    ]


def _position(stream: BinaryIO) -> int | None:
    """Where a seekable stream stands now; None when it cannot be rewound."""
    try:
        return stream.tell() if stream.seekable() else None
    except (AttributeError, OSError, ValueError):
        return None


class _ResponseStream(io.RawIOBase):
    """A file-like view of a urllib3 response that releases the connection on close."""

    def __init__(self, response: object) -> None:
        self._response = response

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        data = self._response.read(len(buffer))  # type: ignore[attr-defined]
        buffer[: len(data)] = data
        return len(data)

    def read(self, size: int = -1) -> bytes:  # type: ignore[override]
        if size is None or size < 0:
            return self._response.read()  # type: ignore[attr-defined,no-any-return]
        return self._response.read(size)  # type: ignore[attr-defined,no-any-return]

    def close(self) -> None:
        if not self.closed:
            self._response.close()  # type: ignore[attr-defined]
            self._response.release_conn()  # type: ignore[attr-defined]
        super().close()
