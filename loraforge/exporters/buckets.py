"""Kohya's bucket generator and nearest-bucket rule, used to predict how a trainer will group the images."""

from __future__ import annotations

from collections.abc import Sequence

from loraforge.exporters.base import ExportItem, ExportSpec
from loraforge.imaging.buckets import kohya_buckets as imaging_kohya_buckets


def kohya_buckets(resolution: int, *, min_reso: int, max_reso: int, step: int) -> list[tuple[int, int]]:
    """sd-scripts' make_bucket_resolutions as (width, height) pairs: the one generator, in imaging.buckets."""
    buckets = imaging_kohya_buckets(resolution, min_reso, max_reso, step)
    return [(bucket.width, bucket.height) for bucket in buckets]


def nearest_bucket(width: int, height: int, buckets: Sequence[tuple[int, int]]) -> tuple[int, int]:
    """The bucket whose aspect ratio is closest to the image's (sd-scripts compares ratios linearly)."""
    ratio = width / height
    return min(buckets, key=lambda b: (abs(b[0] / b[1] - ratio), -b[0] * b[1]))


def spec_buckets(spec: ExportSpec) -> list[tuple[int, int]]:
    if spec.buckets:
        return [tuple(b) for b in spec.buckets]  # type: ignore[misc]
    assert spec.resolution and spec.min_bucket_reso and spec.max_bucket_reso and spec.bucket_step
    return kohya_buckets(
        spec.resolution, min_reso=spec.min_bucket_reso, max_reso=spec.max_bucket_reso, step=spec.bucket_step
    )


def bucket_of(item: ExportItem, buckets: Sequence[tuple[int, int]]) -> tuple[int, int]:
    """The item's assigned bucket, or the one a trainer would pick for its size."""
    return item.bucket if item.bucket is not None else nearest_bucket(item.width, item.height, buckets)


def upscale_factor(width: int, height: int, bucket: tuple[int, int]) -> float:
    """How much an image is enlarged to cover its bucket before the centre crop (1.0 or less: no upscale)."""
    return max(bucket[0] / width, bucket[1] / height)
