"""Measure one image for curation: a single reduced-size decode feeding every metric and hash.

`measure()` runs per image on workers; its ImageFeatures is plain JSON (to_dict/from_dict), so it can be
stored in the catalog's image_metadata table and shipped between processes, and the driver then runs
checks and grouping on features alone without touching pixels again.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np
from PIL import Image

from loraforge.curation import metrics
from loraforge.curation.perceptual import crop_view_phashes, from_hex, perceptual_hashes, to_hex
from loraforge.errors import InvalidInput
from loraforge.imaging.decode import decode, image_facts, open_checked

FEATURES_VERSION = 1
"""Bump when a metric's definition changes, so stored features are recomputed rather than mixed."""

WORK_SIZE = 512
"""Long side of the copy that sharpness, exposure and colour are measured on."""
INFO_SIZE = 64
"""Long side of the tiny copy for information content: small enough that sensor noise averages away."""


@dataclass(frozen=True)
class ImageFeatures:
    """Everything curation needs to know about one image. Width and height are as displayed."""

    width: int
    height: int
    format: str
    file_size: int
    sha256: str
    pixel_hash: str
    """Hash of the decoded, oriented pixels: equal for copies that differ only in metadata."""
    phash: str
    phash_mirror: str
    dhash: str
    dhash_mirror: str
    crop_phashes: list[str]
    """pHashes of the 90% corner and centre crops (perceptual.crop_view_phashes)."""
    hash_contrast: float
    sharpness: float
    """Focus of the sharpest tiles at WORK_SIZE (metrics.tile_sharpness); higher is sharper."""
    sharpness_global: float
    """Plain variance of the Laplacian over the whole WORK_SIZE copy."""
    lum_p05: float
    lum_p50: float
    lum_p95: float
    lum_p99: float
    value_p05: float
    """Percentiles of value, each pixel's brightest channel, 0..255 (what clips when overexposed)."""
    value_p25: float
    value_p50: float
    value_p95: float
    value_p99: float
    clipped_dark: float
    clipped_light: float
    contrast: float
    detail: float
    chroma_p95: float
    colourful_fraction: float
    version: int = FEATURES_VERSION

    @property
    def pixels(self) -> int:
        return self.width * self.height

    @property
    def phash_int(self) -> int:
        return from_hex(self.phash)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ImageFeatures:
        version = data.get("version")
        if version != FEATURES_VERSION:
            raise InvalidInput(
                f"features version {version} is not the current {FEATURES_VERSION}: re-measure"
            )
        known = {f.name for f in fields(cls)}
        missing = known - set(data)
        if missing:
            raise InvalidInput(f"features lack {sorted(missing)}")
        values = {k: v for k, v in data.items() if k in known}
        values["crop_phashes"] = list(values["crop_phashes"])
        return cls(**values)


def measure(data: bytes, *, max_pixels: int) -> ImageFeatures:
    """Decode once at reduced size and compute every curation feature; InvalidInput on bad bytes."""
    opened = open_checked(data, max_pixels=max_pixels)
    facts = image_facts(opened)
    # JPEGs decode at the smallest 1/2^k scale still covering WORK_SIZE: the same stream gives the same
    # pixels, so pixel_hash stays a faithful "identical picture" key at a fraction of the decode cost.
    decoded = decode(opened, draft_size=(WORK_SIZE, WORK_SIZE))
    pixel_hash = _pixel_hash(decoded, facts.width, facts.height)
    work = _fit(decoded, WORK_SIZE)
    rgb = np.asarray(work)
    # Pillow's "L" is Rec. 601 luma, like metrics.luminance, computed in C.
    grey_levels = np.asarray(work.convert("L"))
    grey = grey_levels.astype(np.float32)
    exposure = metrics.exposure(grey_levels, metrics.max_channel(rgb))
    info = metrics.information(np.asarray(_fit(work, INFO_SIZE, resample=Image.Resampling.BOX)))
    colour = metrics.colourfulness(rgb)
    hashes = perceptual_hashes(work)
    luma, value = exposure.luma, exposure.value
    return ImageFeatures(
        width=facts.width,
        height=facts.height,
        format=facts.format,
        file_size=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        pixel_hash=pixel_hash,
        phash=to_hex(hashes.phash),
        phash_mirror=to_hex(hashes.phash_mirror),
        dhash=to_hex(hashes.dhash),
        dhash_mirror=to_hex(hashes.dhash_mirror),
        crop_phashes=[to_hex(view) for view in crop_view_phashes(work)],
        hash_contrast=round(hashes.contrast, 4),
        sharpness=round(metrics.tile_sharpness(grey), 4),
        sharpness_global=round(metrics.laplacian_variance(grey), 4),
        lum_p05=luma[5],
        lum_p50=luma[50],
        lum_p95=luma[95],
        lum_p99=luma[99],
        value_p05=value[5],
        value_p25=value[25],
        value_p50=value[50],
        value_p95=value[95],
        value_p99=value[99],
        clipped_dark=exposure.clipped_dark,
        clipped_light=exposure.clipped_light,
        contrast=round(info.contrast, 4),
        detail=round(info.detail, 4),
        chroma_p95=colour.chroma_p95,
        colourful_fraction=colour.colourful_fraction,
    )


def _fit(
    image: Image.Image, long_side: int, *, resample: Image.Resampling = Image.Resampling.BILINEAR
) -> Image.Image:
    """Shrink so the long side is at most `long_side`; never enlarge (that would invent sharpness data)."""
    width, height = image.size
    scale = long_side / max(width, height)
    if scale >= 1.0:
        return image
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return image.resize(size, resample, reducing_gap=3.0 if resample != Image.Resampling.BOX else None)


def _pixel_hash(image: Image.Image, width: int, height: int) -> str:
    digest = hashlib.blake2b(digest_size=16)
    digest.update(f"{width}x{height}:{image.size[0]}x{image.size[1]}:".encode())
    digest.update(image.tobytes())
    return digest.hexdigest()
