"""Zip exports: flat Replicate archives, STORED images and DEFLATED text, reproducible bytes."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path, PurePosixPath

import pytest
from exporter_factories import make_spec, six_items

from loraforge.errors import InvalidInput
from loraforge.exporters import DirectorySink, ZipSink, export_dataset


def test_replicate_zip_is_flat_with_same_stem_captions(tmp_path: Path) -> None:
    target = tmp_path / "replicate.zip"
    result = export_dataset(six_items(), make_spec("replicate"), sink=ZipSink(target))
    with zipfile.ZipFile(target) as archive:
        names = archive.namelist()
        assert all("/" not in name for name in names)
        images = [n for n in names if n.endswith((".jpg", ".png"))]
        assert len(images) == 6 and len(names) == 12
        for image in images:
            stem = PurePosixPath(image).stem
            assert f"{stem}.txt" in names
            assert archive.read(f"{stem}.txt").decode("utf-8").startswith("ohwx")
            assert archive.getinfo(image).compress_type == zipfile.ZIP_STORED
        captions = [n for n in names if n.endswith(".txt")]
        assert all(archive.getinfo(n).compress_type == zipfile.ZIP_DEFLATED for n in captions)
        assert archive.testzip() is None
    assert {e.name for e in result.files} == set(names)


def test_zip_into_caller_file_object_matches_directory_export(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    export_dataset(six_items(), make_spec("kohya"), sink=ZipSink(buffer))
    assert not buffer.closed  # the caller owns it, e.g. to upload it next
    export_dataset(six_items(), make_spec("kohya"), sink=DirectorySink(tmp_path / "dir"))
    with zipfile.ZipFile(io.BytesIO(buffer.getvalue())) as archive:
        for name in archive.namelist():
            assert archive.read(name) == (tmp_path / "dir" / name).read_bytes()
        assert "img/10_ohwx person/" + six_items()[0].stem + ".jpg" in archive.namelist()


def test_two_zip_exports_of_the_same_data_are_byte_identical(tmp_path: Path) -> None:
    for name in ("a.zip", "b.zip"):
        export_dataset(six_items(), make_spec("onetrainer"), sink=ZipSink(tmp_path / name))
    assert (tmp_path / "a.zip").read_bytes() == (tmp_path / "b.zip").read_bytes()


def test_sinks_refuse_unsafe_names_and_duplicates(tmp_path: Path) -> None:
    sink = ZipSink(tmp_path / "x.zip")
    for bad in ("../evil.txt", "/abs.txt", "a\\b.txt", "dir/"):
        with pytest.raises(InvalidInput):
            sink.write(bad, b"x", compress=True)
    sink.write("ok.txt", b"x", compress=True)
    with pytest.raises(Exception, match="twice"):
        sink.write("ok.txt", b"y", compress=True)
    sink.close()


def test_directory_sink_refuses_non_empty_directory(tmp_path: Path) -> None:
    (tmp_path / "old.txt").write_text("stale")
    with pytest.raises(Exception, match="not empty"):
        DirectorySink(tmp_path)


class WriteOnlyStream(io.RawIOBase):
    """A pipe-like target (an upload stream): no seek, no tell."""

    def __init__(self) -> None:
        self.chunks: list[bytes] = []

    def writable(self) -> bool:
        return True

    def write(self, data: bytes) -> int:  # type: ignore[override]
        self.chunks.append(bytes(data))
        return len(data)


def test_zip_streams_into_a_non_seekable_target() -> None:
    stream = WriteOnlyStream()
    done: list[int] = []
    result = export_dataset(six_items(), make_spec("replicate"), sink=ZipSink(stream), progress=done.append)
    assert sum(done) == 6 and len(stream.chunks) > 12  # written member by member, not as one blob
    with zipfile.ZipFile(io.BytesIO(b"".join(stream.chunks))) as archive:
        assert archive.testzip() is None
        assert sorted(archive.namelist()) == sorted(e.name for e in result.files)
