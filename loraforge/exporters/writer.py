"""Runs an export: validates, then lets the format's exporter lay files out through an ExportWriter.

The writer reads and prepares images ahead on a few threads (object-store reads wait on the network, hashing
and re-encoding release the GIL) while members are written in order, so at most `read_ahead` images are in
memory at once whatever the size of the dataset.
"""

from __future__ import annotations

import hashlib
import logging
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

from loraforge.errors import InvalidInput, LoraForgeError
from loraforge.exporters.attribution import ATTRIBUTION_FILE, attribution_markdown
from loraforge.exporters.base import ExportItem, ExportResult, ExportSpec, ManifestEntry
from loraforge.exporters.captions import render_caption
from loraforge.exporters.images import PreparedImage, face_mask_png, image_size, prepare_image
from loraforge.exporters.registry import get_exporter
from loraforge.exporters.sinks import DirectorySink, Sink, ZipSink
from loraforge.exporters.validate import validate

logger = logging.getLogger(__name__)

MASK_SUFFIX = "-masklabel"


@dataclass(frozen=True)
class WrittenImage:
    """An image that made it into the export, with the caption written for it."""

    item: ExportItem
    name: str
    caption: str


@dataclass
class _Prepared:
    item: ExportItem
    image: PreparedImage | None = None
    sha256: str = ""
    mask: bytes | None = None
    error: str | None = None


@dataclass
class ExportWriter:
    """The only way exporters write: it hashes every file and records it for the manifest."""

    sink: Sink
    spec: ExportSpec
    read_ahead: int = 4
    strict: bool = False
    progress: Callable[[int], None] | None = None
    entries: list[ManifestEntry] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    bytes_written: int = 0
    image_count: int = 0

    def warn(self, message: str) -> None:
        logger.warning(message)
        self.warnings.append(message)

    def write_bytes(
        self,
        name: str,
        data: bytes,
        *,
        compress: bool,
        sha256: str | None = None,
        source_image_id: str | None = None,
        caption_sha256: str | None = None,
    ) -> ManifestEntry:
        self.sink.write(name, data, compress=compress)
        entry = ManifestEntry(
            name, sha256 or hashlib.sha256(data).hexdigest(), len(data), source_image_id, caption_sha256
        )
        self.entries.append(entry)
        self.bytes_written += len(data)
        return entry

    def write_text(self, name: str, text: str, *, source_image_id: str | None = None) -> ManifestEntry:
        data = text.encode("utf-8")
        return self.write_bytes(
            name,
            data,
            compress=True,
            source_image_id=source_image_id,
            caption_sha256=hashlib.sha256(data).hexdigest() if source_image_id else None,
        )

    def write_images(
        self, items: Sequence[ExportItem], folder: str, *, captions: bool = True, masks: bool = False
    ) -> list[WrittenImage]:
        """Write each image (plus its caption, `stem.txt` unless spec.caption_extension says otherwise, plus
        `stem-masklabel.png` when asked) under `folder`."""
        prefix = f"{folder.strip('/')}/" if folder.strip("/") else ""
        written: list[WrittenImage] = []
        for prepared in self._prepare_ahead(items, masks=masks):
            item = prepared.item
            if prepared.image is None:
                message = f"image {item.image_id} ({item.stem}) skipped: {prepared.error}"
                if self.strict:
                    raise InvalidInput(message)
                self.warn(message)
                continue
            caption = render_caption(item.caption, self.spec)
            caption_sha = hashlib.sha256(caption.encode("utf-8")).hexdigest()
            name = f"{prefix}{item.stem}.{prepared.image.ext}"
            self.write_bytes(
                name,
                prepared.image.data,
                compress=False,
                sha256=prepared.sha256,
                source_image_id=item.image_id,
                caption_sha256=caption_sha,
            )
            if captions:
                self.write_text(
                    f"{prefix}{item.stem}{self.spec.caption_extension}",
                    caption,
                    source_image_id=item.image_id,
                )
            if prepared.mask is not None:
                self.write_bytes(
                    f"{prefix}{item.stem}{MASK_SUFFIX}.png",
                    prepared.mask,
                    compress=False,
                    source_image_id=item.image_id,
                )
            written.append(WrittenImage(item, name, caption))
            self.image_count += 1
            if self.progress is not None:
                self.progress(1)
        return written

    def _prepare(self, item: ExportItem, masks: bool) -> _Prepared:
        try:
            raw = item.read()
            image = prepare_image(
                raw,
                declared_format=item.source_format,
                convert_to=self.spec.convert_to,
                jpeg_quality=self.spec.jpeg_quality,
                keep_webp=item.bucket is not None,
            )
            mask = None
            if masks and item.faces:
                mask = face_mask_png(image_size(image.data), item.faces)
            known = item.content_sha256 if image.converted_from is None else None
            return _Prepared(item, image, known or hashlib.sha256(image.data).hexdigest(), mask)
        except (LoraForgeError, OSError, ValueError) as exc:
            return _Prepared(item, error=str(exc) or type(exc).__name__)

    def _prepare_ahead(self, items: Iterable[ExportItem], *, masks: bool) -> Iterator[_Prepared]:
        workers = max(1, self.read_ahead)
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="export-read") as pool:
            pending: deque[Future[_Prepared]] = deque()
            source = iter(items)
            for item in source:
                pending.append(pool.submit(self._prepare, item, masks))
                if len(pending) >= workers:
                    break
            while pending:
                done = pending.popleft().result()
                following = next(source, None)
                if following is not None:
                    pending.append(pool.submit(self._prepare, following, masks))
                yield done


def export_dataset(
    items: Sequence[ExportItem],
    spec: ExportSpec,
    *,
    sink: DirectorySink | ZipSink | Sink,
    strict: bool = False,
    tokens: Callable[[str], int] | None = None,
    read_ahead: int = 4,
    progress: Callable[[int], None] | None = None,
) -> ExportResult:
    """Validate `items` against `spec`, write the trainer's layout into `sink` and close it.

    Non-strict exports go ahead and carry every validation problem as a warning; strict ones raise
    InvalidInput before writing anything, and on any image that cannot be read. An unreadable image is
    otherwise skipped with a warning. `bytes_written` sums the files, not the zip overhead.
    """
    exporter = get_exporter(spec.format)
    report = validate(items, spec, tokens=tokens, strict=strict)
    writer = ExportWriter(sink, spec, read_ahead=read_ahead, strict=strict, progress=progress)
    writer.warnings.extend(problem.line() for problem in report.problems if problem.severity != "info")
    try:
        exporter.write(items, spec, writer)
        attribution = attribution_markdown(items)
        if attribution is not None:  # only pictures from image searches carry provenance
            writer.write_text(ATTRIBUTION_FILE, attribution)
    finally:
        sink.close()
    logger.info(
        "export %s: %d images, %d files, %d bytes",
        spec.format,
        writer.image_count,
        len(writer.entries),
        writer.bytes_written,
    )
    return ExportResult(writer.entries, writer.warnings, writer.bytes_written, writer.image_count)
