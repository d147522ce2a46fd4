"""Both object stores through one contract: the local folder, and S3 over HTTP against a real server."""

from __future__ import annotations

import io
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from loraforge.errors import InvalidInput, NotFound
from loraforge.storage import ObjectStore, StoreConfig, open_store
from tests.conftest import S3Server


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ObjectStore]:
    if request.param == "local":
        yield open_store(StoreConfig(url=f"file://{tmp_path / 'objects'}"))
        return
    server: S3Server = request.getfixturevalue("s3_server")
    yield open_store(
        StoreConfig(
            url=f"s3://lf-{uuid.uuid4().hex[:10]}",
            endpoint=server.endpoint,
            access_key=server.access_key,
            secret_key=server.secret_key,
            secure=False,
        )
    )


def test_put_get_stat_exists_delete(store: ObjectStore) -> None:
    info = store.put("originals/ab/abc", b"hello bytes", content_type="image/jpeg")
    assert info.size == 11
    assert store.get("originals/ab/abc") == b"hello bytes"
    assert store.stat("originals/ab/abc").size == 11
    assert store.exists("originals/ab/abc")
    store.delete("originals/ab/abc")
    assert not store.exists("originals/ab/abc")
    with pytest.raises(NotFound):
        store.get("originals/ab/abc")
    store.delete("originals/ab/abc")  # deleting twice is fine


def test_list_by_prefix_in_key_order(store: ObjectStore) -> None:
    for key in ("derived/d1/b", "derived/d1/a", "derived/d2/c", "exports/x.zip"):
        store.put(key, key.encode())
    assert [info.key for info in store.list("derived/d1/")] == ["derived/d1/a", "derived/d1/b"]
    assert len(list(store.list())) == 4


def test_streamed_multipart_upload_and_download(store: ObjectStore, tmp_path: Path) -> None:
    payload = os.urandom(20 * 1024 * 1024 + 123)  # over one 16 MiB part: exercises multipart
    source = tmp_path / "big.bin"
    source.write_bytes(payload)
    store.put_file("exports/big.bin", source)
    with store.open("exports/big.bin") as stream:
        assert stream.read(10) == payload[:10]
    store.download("exports/big.bin", tmp_path / "back.bin")
    assert (tmp_path / "back.bin").read_bytes() == payload
    info = store.put("exports/stream.bin", io.BytesIO(payload[:5000]))  # unknown length
    assert info.size == 5000


def test_presigned_url_serves_the_object(store: ObjectStore) -> None:
    store.put("derived/x/thumb.webp", b"thumbnail")
    url = store.presigned_url("derived/x/thumb.webp", expires_s=60)
    if url.startswith("file://"):
        assert Path(url[len("file://") :]).read_bytes() == b"thumbnail"
    else:
        assert httpx.get(url).content == b"thumbnail"


@pytest.mark.parametrize("key", ["../escape", "/abs", "a//b", ""])
def test_bad_keys_refused(store: ObjectStore, key: str) -> None:
    with pytest.raises(InvalidInput):
        store.put(key, b"x")
