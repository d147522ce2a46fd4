"""ObjectStore on S3 / MinIO through the minio SDK; streams large objects in multipart uploads."""

from __future__ import annotations

import io
import shutil
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import BinaryIO, Literal, cast

from loraforge.errors import NotFound, StorageError
from loraforge.storage.base import ObjectInfo, StoreConfig, check_key

_PART_SIZE = 16 * 1024 * 1024
_MISSING = {"NoSuchKey", "NoSuchObject", "NotFound", "ResourceNotFound"}


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
        )
        self._bucket_ready = False

    def _ensure_bucket(self) -> None:
        if self._bucket_ready:
            return
        with _translated(f"bucket {self.bucket}"):
            if not self.client.bucket_exists(self.bucket):
                self.client.make_bucket(self.bucket)
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
        with _translated(key):
            result = self.client.put_object(
                self.bucket,
                key,
                stream,
                length=length if length is not None else -1,
                part_size=_PART_SIZE,
                content_type=content_type,
            )
        size = length if length is not None else self.stat(key).size
        return ObjectInfo(key=key, size=size, etag=result.etag)

    def put_file(self, key: str, path: Path, *, content_type: str = "application/octet-stream") -> ObjectInfo:
        with open(path, "rb") as stream:
            return self.put(key, stream, length=Path(path).stat().st_size, content_type=content_type)

    def get(self, key: str) -> bytes:
        response = self.open(key)
        try:
            return response.read()
        finally:
            response.close()

    def open(self, key: str) -> BinaryIO:
        self._ensure_bucket()
        with _translated(check_key(key)):
            response = self.client.get_object(self.bucket, key)
        return cast(BinaryIO, _ResponseStream(response))

    def download(self, key: str, path: Path) -> None:
        with self.open(key) as source, open(path, "wb") as target:
            shutil.copyfileobj(source, target, 1024 * 1024)

    def stat(self, key: str) -> ObjectInfo:
        self._ensure_bucket()
        with _translated(check_key(key)):
            info = self.client.stat_object(self.bucket, key)
        return ObjectInfo(key=key, size=info.size or 0, etag=info.etag)

    def exists(self, key: str) -> bool:
        try:
            self.stat(key)
        except NotFound:
            return False
        return True

    def delete(self, key: str) -> None:
        self._ensure_bucket()
        with _translated(check_key(key)):
            self.client.remove_object(self.bucket, key)

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        self._ensure_bucket()
        with _translated(f"list {prefix}"):
            for obj in self.client.list_objects(self.bucket, prefix=prefix, recursive=True):
                yield ObjectInfo(
                    key=obj.object_name or "", size=obj.size or 0, etag=obj.etag, modified=obj.last_modified
                )

    def presigned_url(self, key: str, *, expires_s: int = 3600, method: str = "GET") -> str:
        self._ensure_bucket()
        with _translated(check_key(key)):
            return self.client.get_presigned_url(
                method, self.bucket, key, expires=timedelta(seconds=expires_s)
            )


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


class _translated:
    """Turn minio and connection errors into NotFound / StorageError naming the object."""

    def __init__(self, what: str) -> None:
        self.what = what

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: type | None, exc: BaseException | None, tb: object) -> Literal[False]:
        if exc is None:
            return False
        from minio.error import MinioException, S3Error

        if isinstance(exc, S3Error) and exc.code in _MISSING:
            raise NotFound(f"object {self.what} not found") from exc
        if isinstance(exc, MinioException | OSError):
            raise StorageError(f"object store error on {self.what}: {exc}") from exc
        if exc.__class__.__module__.startswith("urllib3"):
            raise StorageError(f"object store unreachable for {self.what}: {exc}") from exc
        return False
