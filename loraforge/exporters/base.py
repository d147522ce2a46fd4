"""Value objects every exporter shares: the items going out, the export settings and what came out."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import PurePosixPath
from typing import Any, Literal

from loraforge.errors import InvalidInput
from loraforge.imaging.buckets import grid_parameters
from loraforge.targets import TARGETS

TargetModel = Literal["sd15", "sdxl", "flux"]
Box = tuple[float, float, float, float]
"""A face box (x0, y0, x1, y1) in pixels of the image that ExportItem.read returns."""

STEM_MAX_CHARS = 80
_SHA_CHARS = 8


@dataclass(frozen=True)
class ExportItem:
    """One image going out, as the catalog knows it; `read` fetches its bytes only when written."""

    image_id: str
    stem: str
    source_sha256: str
    caption: str | None
    bucket: tuple[int, int] | None
    width: int
    height: int
    read: Callable[[], bytes] = field(repr=False, compare=False)
    """Bytes of the image to export: a processed derivative if any, else the original."""
    source_format: str = "jpeg"
    """Format of the bytes `read` returns ("jpeg", "png", "webp", ...); the bytes are sniffed as well."""
    status: str = "kept"
    faces: list[Box] | None = None
    content_sha256: str | None = None
    """sha256 of the bytes `read` returns when already known (an original's is its catalog sha256); the
    export then skips re-hashing them. None: hashed while exporting (derivatives)."""
    provenance: Mapping[str, Any] | None = field(default=None, compare=False)
    """Where the picture came from and under which licence (an image search's record); None: not known."""


CAPTION_EXTENSION_FORMATS = ("kohya", "ai-toolkit")
"""The formats whose config names the caption extension (the others' trainers read .txt only)."""


def check_caption_extension(format: str, extension: str) -> None:
    """A caption extension like .txt or .caption; another than .txt only for the formats whose config tells
    the trainer about it."""
    if not re.fullmatch(r"\.[a-z0-9]{1,10}", extension):
        raise InvalidInput(f"caption extension {extension!r}: give one like .txt or .caption")
    if extension != ".txt" and format not in CAPTION_EXTENSION_FORMATS:
        raise InvalidInput(
            f"caption extension {extension}: {format} reads .txt captions only "
            f"(only {' and '.join(CAPTION_EXTENSION_FORMATS)} take another)"
        )


@dataclass(frozen=True)
class ExportSpec:
    """What to export and for which trainer; None fields take the target model's defaults."""

    format: str
    trigger_word: str | None = None
    class_word: str | None = None
    target_model: TargetModel = "sdxl"
    resolution: int | None = None
    repeats: int | None = None
    """Times each image is seen per epoch (1 = once); None takes the format's default (kohya 10, else 1)."""
    batch_size: int = 1
    bucket_step: int | None = None
    """Grid step of sd-scripts' buckets (bucket_reso_steps); None: the model's grid (loraforge.targets)."""
    min_bucket_reso: int | None = None
    max_bucket_reso: int | None = None
    """Side limits of the buckets; None: the model's, scaled with `resolution` as the bucket stage does."""
    bucket_no_upscale: bool = False
    max_caption_tokens: int | None = None
    include_masks: bool = False
    reg_items: list[ExportItem] | None = None
    reg_repeats: int = 1
    ensure_trigger: bool = True
    """Prepend the trigger word to captions that lack it: several trainers ignore class tokens otherwise."""
    caption_dropout_rate: float = 0.0
    shuffle_caption: bool = False
    keep_tokens: int | None = None
    """Leading caption tokens kept in place when shuffling; None keeps the trigger word (1) if any."""
    flip_aug: bool = False
    caption_extension: str = ".txt"
    """Extension of the caption files beside the images; only kohya and ai-toolkit let it be set."""
    convert_to: Literal["png", "jpeg"] = "png"
    """Target for images neither jpeg nor png (webp, ...): png keeps every pixel, jpeg is smaller."""
    jpeg_quality: int = 95
    dataset_root: str | None = None
    """Where the trainer will find the export: config files name paths under it (None: relative paths).
    The local folder copy of a stored export names its own absolute path unless `relative_paths` is set."""
    relative_paths: bool = False
    """Keep the folder copy's config paths relative to it too (a folder to move elsewhere)."""
    name: str = "dataset"
    options: Mapping[str, Any] = field(default_factory=dict)
    """Format-specific extras, documented in each exporter module."""

    def __post_init__(self) -> None:
        if self.target_model not in TARGETS:
            known = ", ".join(sorted(TARGETS))
            raise InvalidInput(f"unknown target model {self.target_model!r}; use one of {known}")
        facts = TARGETS[self.target_model]
        grid = grid_parameters(
            self.target_model,
            resolution=self.resolution,
            min_reso=self.min_bucket_reso,
            max_reso=self.max_bucket_reso,
            step=self.bucket_step,
        )
        defaults = {
            "resolution": grid.resolution,
            "bucket_step": grid.step,
            "min_bucket_reso": grid.min_reso,
            "max_bucket_reso": grid.max_reso,
            "max_caption_tokens": facts.max_caption_tokens,
        }
        for key, value in defaults.items():
            if getattr(self, key) is None:
                object.__setattr__(self, key, value)
        for word_field in ("trigger_word", "class_word"):
            word = getattr(self, word_field)
            if word is not None and (not word.strip() or re.search(r"[/\\\x00-\x1f]", word)):
                raise InvalidInput(
                    f"{word_field} {word!r} is empty or holds a path separator or control character"
                )
        check_caption_extension(self.format, self.caption_extension)
        if self.batch_size < 1:
            raise InvalidInput("batch_size must be at least 1")
        if self.repeats is not None and self.repeats < 1:
            raise InvalidInput("repeats must be at least 1 (1 = each image once per epoch)")
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}", self.name):
            raise InvalidInput(f"export name {self.name!r} must be 1-64 chars of letters, digits, _ . -")

    def repeats_or(self, default: int) -> int:
        return self.repeats if self.repeats is not None else default

    @property
    def effective_keep_tokens(self) -> int:
        if self.keep_tokens is not None:
            return self.keep_tokens
        return 1 if self.trigger_word else 0

    def path_in_dataset(self, relative: str) -> str:
        """A path as a config file names it: under dataset_root when one is set, else relative."""
        if self.dataset_root is None:
            return relative
        return str(PurePosixPath(self.dataset_root) / relative)

    def settings(self) -> dict[str, Any]:
        """The settings as plain JSON values, for manifests; reg items appear as ids and hashes."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "reg_items":
                value = None if value is None else sorted(item.source_sha256 for item in value)
            elif f.name == "options":
                value = dict(value)
            out[f.name] = value
        return out


@dataclass(frozen=True)
class ManifestEntry:
    """One file written by an export."""

    name: str
    sha256: str
    bytes: int
    source_image_id: str | None = None
    caption_sha256: str | None = None


@dataclass
class ExportResult:
    """What an export wrote, in write order, and what it warned about."""

    files: list[ManifestEntry]
    warnings: list[str]
    bytes_written: int
    image_count: int = 0


def safe_stem(filename: str, sha256: str) -> str:
    """A file stem that is ASCII, has no spaces or slashes, fits 80 chars and is the same for the same bytes.

    The short sha suffix makes stems unique across files that share a name, and keeps OneTrainer from ever
    reading an image called "x-masklabel" as a mask.
    """
    if not re.fullmatch(r"[0-9a-fA-F]{8,}", sha256):
        raise InvalidInput(f"not a sha256 hex digest: {sha256!r}")
    base = re.split(r"[/\\]", filename)[-1]
    base = base.rsplit(".", 1)[0] if "." in base.strip(".") else base
    ascii_text = unicodedata.normalize("NFKD", base).encode("ascii", "ignore").decode("ascii").lower()
    slug = re.sub(r"[^a-z0-9_-]+", "-", ascii_text)
    slug = re.sub(r"-{2,}", "-", slug).strip("-_.")
    slug = slug[: STEM_MAX_CHARS - _SHA_CHARS - 1].rstrip("-_") or "img"
    return f"{slug}_{sha256[:_SHA_CHARS].lower()}"
