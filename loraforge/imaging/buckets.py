"""Aspect-ratio buckets, the rule that assigns a picture to one of them, and the shape of a trainer's rule.

A model's generic buckets come from kohya's generator on the model's grid (`bucket_set`). A trainer's own
buckets come from its `BucketRule` (each exporter ports its trainer's, loraforge.exporters.buckets): the sizes
that trainer takes as they are, so it neither resizes nor crops what the bucket stage renders.

Bucket choice rule (`choose_bucket`):
1. Distance between a picture and a bucket is |log(picture aspect) - log(bucket aspect)|; the bucket with the
   smallest distance is the natural one (ties: the larger bucket, then the label, so it is deterministic).
2. The upscale a bucket needs is the factor that makes the largest crop of the bucket's aspect inside the
   picture cover the bucket: max(bucket_w / picture_w, bucket_h / picture_h).
3. If the natural bucket needs more than `max_upscale`, the closest-aspect bucket that needs no more than that
   and whose distance is within `aspect_tolerance` of the best one is taken instead (typically the same aspect
   at a lower resolution in a multi-resolution set). Failing that, the closest-aspect bucket needing the least
   upscale is kept and the choice is flagged `flagged_too_small`, so the user can drop or accept the picture
   knowing the upscale factor.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import reduce
from typing import Protocol

from loraforge.errors import InvalidInput
from loraforge.targets import TARGETS

_EPS = 1e-9


@dataclass(frozen=True, order=True)
class Bucket:
    """A training resolution: the exact pixel size a picture is resized to."""

    width: int
    height: int

    def __post_init__(self) -> None:
        if self.width < 1 or self.height < 1:
            raise InvalidInput(f"bucket sides must be positive, got {self.width}x{self.height}")

    @property
    def label(self) -> str:
        return f"{self.width}x{self.height}"

    @property
    def aspect(self) -> float:
        return self.width / self.height

    @property
    def area(self) -> int:
        return self.width * self.height


@dataclass(frozen=True)
class BucketSet:
    """The buckets one trainer target accepts; every side is a multiple of `step`."""

    name: str
    buckets: tuple[Bucket, ...]
    step: int

    def __post_init__(self) -> None:
        if not self.buckets:
            raise InvalidInput(f"bucket set {self.name!r} is empty")

    @property
    def labels(self) -> list[str]:
        return [bucket.label for bucket in self.buckets]


@dataclass(frozen=True)
class Placement:
    """What a trainer does with a picture of some size: resizes it to `resized`, then crops `bucket` out of
    it. It takes the picture as it is exactly when both equal the picture's own size."""

    bucket: tuple[int, int]
    resized: tuple[int, int]

    def keeps(self, width: int, height: int) -> bool:
        return self.bucket == (width, height) and self.resized == (width, height)


class BucketRule(Protocol):
    """A trainer's own bucketing for one model, ported from the trainer's code (each rule cites where).

    `place` is the trainer's mapping from a picture's size to what it trains; `buckets` are the sizes the
    bucket stage may render for it, every one of them a size `place` keeps as it is.
    """

    @property
    def name(self) -> str: ...

    def place(self, width: int, height: int) -> Placement: ...

    def buckets(self) -> BucketSet: ...


def fixed_point_set(name: str, candidates: Iterable[tuple[int, int]], rule: BucketRule) -> BucketSet:
    """The candidate sizes the rule keeps as they are, as a bucket set (step: the largest power of two
    dividing every side)."""
    kept = sorted({Bucket(w, h) for w, h in candidates if rule.place(w, h).keeps(w, h)})
    if not kept:
        raise InvalidInput(f"{name}: no candidate size is kept as it is by the trainer's rule")
    common = reduce(math.gcd, [side for bucket in kept for side in (bucket.width, bucket.height)])
    return BucketSet(name=name, buckets=tuple(kept), step=common & -common)


@dataclass(frozen=True)
class BucketChoice:
    bucket: Bucket
    upscale_factor: float
    """>1 means the crop is enlarged to reach the bucket size."""
    flagged_too_small: bool


@dataclass(frozen=True)
class BucketSummary:
    images_per_bucket: dict[str, int]
    too_small: dict[Hashable, float]
    """Picture id -> upscale factor, for flagged pictures."""
    underfilled: dict[str, int] = field(default_factory=dict)
    """Bucket label -> image count, for buckets holding fewer images than the batch size (some trainers drop
    them, SimpleTuner among them)."""


def kohya_buckets(resolution: int, min_reso: int, max_reso: int, step: int) -> list[Bucket]:
    """kohya sd-scripts' generator (kohya-ss/sd-scripts, library/model_util.py, make_bucket_resolutions):
    area = resolution², the square, and for each width from min to max the tallest height of that area on
    the step grid, capped at max_reso, with its transpose."""
    if step < 1 or min_reso < step or max_reso < min_reso or resolution < 1:
        raise InvalidInput(f"bad bucket parameters {resolution=}, {min_reso=}, {max_reso=}, {step=}")
    area = resolution * resolution
    square = (resolution // step) * step
    sizes = {(square, square)}
    for width in range(min_reso, max_reso + 1, step):
        # kohya caps the height at max_reso rather than dropping the width; that is what makes SDXL's 41.
        height = min(max_reso, (area // width) // step * step)
        if height >= min_reso:
            sizes.add((width, height))
            sizes.add((height, width))
    return [Bucket(w, h) for w, h in sorted(sizes)]


@dataclass(frozen=True)
class GridParameters:
    """The inputs of kohya's generator for one model: training side, side limits and step."""

    resolution: int
    min_reso: int
    max_reso: int
    step: int


def targets() -> list[str]:
    return sorted(TARGETS)


def grid_parameters(
    target: str,
    *,
    resolution: int | None = None,
    min_reso: int | None = None,
    max_reso: int | None = None,
    step: int | None = None,
) -> GridParameters:
    """The model's grid (loraforge.targets); a different resolution scales min/max with it unless given."""
    try:
        facts = TARGETS[target]
    except KeyError:
        raise InvalidInput(
            f"unknown bucket target {target!r}; choose one of {', '.join(targets())}"
        ) from None
    res = resolution or facts.resolution
    scale = res / facts.resolution
    chosen_step = step or facts.bucket_step
    low = min_reso or max(chosen_step, _snap(facts.min_reso * scale, chosen_step))
    high = max_reso or max(low, _snap(facts.max_reso * scale, chosen_step))
    return GridParameters(res, low, high, chosen_step)


def bucket_set(
    target: str,
    *,
    resolution: int | None = None,
    min_reso: int | None = None,
    max_reso: int | None = None,
    step: int | None = None,
) -> BucketSet:
    """The model's generic buckets: kohya's generator on the model's grid (`grid_parameters`)."""
    grid = grid_parameters(target, resolution=resolution, min_reso=min_reso, max_reso=max_reso, step=step)
    buckets = kohya_buckets(grid.resolution, grid.min_reso, grid.max_reso, grid.step)
    return BucketSet(name=target, buckets=tuple(buckets), step=grid.step)


def parse_bucket_list(text: str, *, name: str = "custom") -> BucketSet:
    """A user-given list such as "1024x1024,1152x896"; the step is the largest power of two dividing all."""
    buckets: set[Bucket] = set()
    for part in text.replace(";", ",").split(","):
        part = part.strip().lower()
        if not part:
            continue
        try:
            width_text, height_text = part.split("x")
            buckets.add(Bucket(int(width_text), int(height_text)))
        except ValueError:
            raise InvalidInput(f"bad bucket {part!r}: write sizes like 1024x1024,1152x896") from None
    if not buckets:
        raise InvalidInput("the bucket list is empty")
    common = reduce(math.gcd, [side for bucket in buckets for side in (bucket.width, bucket.height)])
    step = common & -common
    return BucketSet(name=name, buckets=tuple(sorted(buckets)), step=step)


def upscale_needed(width: int, height: int, bucket: Bucket) -> float:
    """The enlargement the largest crop of the bucket's aspect inside the picture needs to cover it."""
    return max(bucket.width / width, bucket.height / height)


def aspect_distance(width: int, height: int, bucket: Bucket) -> float:
    return abs(math.log(width / height) - math.log(bucket.aspect))


def choose_bucket(
    width: int,
    height: int,
    buckets: BucketSet,
    *,
    max_upscale: float = 1.0,
    aspect_tolerance: float = 0.15,
) -> BucketChoice:
    """Assign a picture to a bucket by the rule in this module's docstring."""
    if width < 1 or height < 1:
        raise InvalidInput(f"picture has no pixels ({width}x{height})")
    scored = sorted(
        buckets.buckets,
        key=lambda b: (round(aspect_distance(width, height, b), 9), -b.area, b.label),
    )
    natural = scored[0]
    best_distance = aspect_distance(width, height, natural)
    for candidate in scored:
        if aspect_distance(width, height, candidate) > best_distance + aspect_tolerance + _EPS:
            break
        factor = upscale_needed(width, height, candidate)
        if factor <= max_upscale + _EPS:
            return BucketChoice(bucket=candidate, upscale_factor=factor, flagged_too_small=False)
    # Nothing fits: of the closest-aspect buckets, the one needing the least enlargement.
    ties = [b for b in scored if aspect_distance(width, height, b) <= best_distance + _EPS]
    least = min(ties, key=lambda b: (upscale_needed(width, height, b), b.label))
    return BucketChoice(
        bucket=least, upscale_factor=upscale_needed(width, height, least), flagged_too_small=True
    )


def bucket_summary(
    choices: Mapping[Hashable, BucketChoice] | Sequence[BucketChoice], batch_size: int
) -> BucketSummary:
    """Images per bucket, flagged pictures with their upscale, and buckets smaller than a batch."""
    items: Mapping[Hashable, BucketChoice] = (
        choices if isinstance(choices, Mapping) else dict(enumerate(choices))
    )
    counts = Counter(choice.bucket.label for choice in items.values())
    too_small = {key: choice.upscale_factor for key, choice in items.items() if choice.flagged_too_small}
    underfilled = {label: count for label, count in sorted(counts.items()) if count < batch_size}
    return BucketSummary(
        images_per_bucket=dict(sorted(counts.items())), too_small=too_small, underfilled=underfilled
    )


def _snap(value: float, step: int) -> int:
    return max(step, int(round(value / step)) * step)
