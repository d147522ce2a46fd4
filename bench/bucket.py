"""Benchmark: crop + resize throughput of LoRA Forge's bucket rendering beside a plain Pillow loop.

Inputs are camera-sized JPEGs (about 12 MP, several aspect ratios) made from the real photos that ship inside
scikit-image, scikit-learn and matplotlib. Every picture gets its SDXL bucket (choose_bucket) and crop box
(crop_box, no faces: the work measured is decode + crop + resize); then each contender renders the same boxes:

- plain: full decode, EXIF transpose, crop, one LANCZOS resize to the bucket (what a simple script does);
- reduce-only: full decode, then LANCZOS with Pillow's reducing_gap (integer reduce() first);
- loraforge: `render_crop_from_bytes`: JPEG draft decode at 1/2-1/8 scale, then reducing_gap LANCZOS.

Pictures per second are the median of --rounds, single process, measured in the same run. The mean absolute
pixel difference from the plain output shows what the shortcut costs in quality (0-255 scale).

    python bench/bucket.py [--images 24] [--rounds 3] [--target sdxl]
"""

from __future__ import annotations

import argparse
import io
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from loraforge.imaging.buckets import Bucket, bucket_set, choose_bucket
from loraforge.imaging.crop import crop_box
from loraforge.imaging.resize import render_crop, render_crop_from_bytes

PHOTOS = {
    "astronaut": ("skimage", "data", "astronaut.png"),
    "chelsea": ("skimage", "data", "chelsea.png"),
    "coffee": ("skimage", "data", "coffee.png"),
    "rocket": ("skimage", "data", "rocket.jpg"),
    "china": ("sklearn", "datasets", "images", "china.jpg"),
    "flower": ("sklearn", "datasets", "images", "flower.jpg"),
    "grace_hopper": ("matplotlib", "mpl-data", "sample_data", "grace_hopper.jpg"),
}
ASPECTS = (4 / 3, 3 / 4, 3 / 2, 2 / 3, 1.0, 16 / 9)
MAX_PIXELS = 80_000_000

Job = tuple[bytes, tuple[int, int, int, int], Bucket]


def _package_file(package: str, *parts: str) -> Path:
    import importlib

    module = importlib.import_module(package)
    return Path(module.__file__).parent.joinpath(*parts)  # type: ignore[arg-type]


def make_inputs(count: int, *, megapixels: float = 12.0) -> list[bytes]:
    """Camera-sized JPEGs: each photo cropped to an aspect ratio and enlarged to about `megapixels`."""
    photos = [Image.open(_package_file(*where)).convert("RGB") for where in PHOTOS.values()]
    rng = np.random.default_rng(0)
    inputs = []
    for index in range(count):
        photo = photos[index % len(photos)]
        aspect = ASPECTS[index % len(ASPECTS)]
        width = round((megapixels * 1e6 * aspect) ** 0.5)
        height = round(width / aspect)
        fitted = ImageOps.fit(photo, (max(64, photo.width), max(64, round(photo.width / aspect))))
        big = fitted.resize((width, height), Image.Resampling.BICUBIC)
        # Grain keeps the enlargement from compressing like a flat picture, as real camera output would.
        grain = rng.normal(0, 6, size=(height, width, 3))
        noisy = Image.fromarray(np.clip(np.asarray(big, dtype=np.float32) + grain, 0, 255).astype(np.uint8))
        buffer = io.BytesIO()
        noisy.save(buffer, "JPEG", quality=92)
        inputs.append(buffer.getvalue())
    return inputs


def plan(inputs: list[bytes], target: str) -> list[Job]:
    buckets = bucket_set(target)
    jobs = []
    for data in inputs:
        width, height = Image.open(io.BytesIO(data)).size
        bucket = choose_bucket(width, height, buckets, max_upscale=1.0).bucket
        jobs.append((data, crop_box(width, height, bucket, []).box, bucket))
    return jobs


def plain(job: Job) -> Image.Image:
    data, box, bucket = job
    image = ImageOps.exif_transpose(Image.open(io.BytesIO(data))).convert("RGB")
    return image.crop(box).resize((bucket.width, bucket.height), Image.Resampling.LANCZOS)


def reduce_only(job: Job) -> Image.Image:
    data, box, bucket = job
    image = ImageOps.exif_transpose(Image.open(io.BytesIO(data))).convert("RGB")
    return render_crop(image, box, bucket)


def loraforge(job: Job) -> Image.Image:
    data, box, bucket = job
    return render_crop_from_bytes(data, box, bucket, max_pixels=MAX_PIXELS)


def measure(
    render: Callable[[Job], Image.Image], jobs: list[Job], rounds: int
) -> tuple[float, list[Image.Image]]:
    rates, outputs = [], []
    for _ in range(rounds):
        start = time.perf_counter()
        outputs = [render(job) for job in jobs]
        rates.append(len(jobs) / (time.perf_counter() - start))
    return statistics.median(rates), outputs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=24)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--target", default="sdxl")
    parser.add_argument("--megapixels", type=float, default=12.0)
    args = parser.parse_args()

    inputs = make_inputs(args.images, megapixels=args.megapixels)
    start = time.perf_counter()
    jobs = plan(inputs, args.target)
    plan_ms = (time.perf_counter() - start) * 1000 / len(jobs)
    size_mb = sum(len(d) for d in inputs) / len(inputs) / 1e6
    print(
        f"{len(jobs)} JPEGs of ~{args.megapixels:.0f} MP ({size_mb:.1f} MB each), target {args.target}, "
        f"{args.rounds} rounds; choose_bucket + crop_box: {plan_ms:.3f} ms/picture"
    )

    baseline_rate, baseline = measure(plain, jobs, args.rounds)
    print(f"{'contender':<12} {'pictures/s':>11} {'vs plain':>9} {'mean |diff|':>12}")
    print(f"{'plain':<12} {baseline_rate:>11.2f} {1.0:>8.2f}x {0.0:>12.2f}")
    for name, render in (("reduce-only", reduce_only), ("loraforge", loraforge)):
        rate, outputs = measure(render, jobs, args.rounds)
        diff = statistics.mean(
            float(np.abs(np.asarray(a, dtype=np.int16) - np.asarray(b, dtype=np.int16)).mean())
            for a, b in zip(outputs, baseline, strict=True)
        )
        assert all(o.size == b.size for o, b in zip(outputs, baseline, strict=True))
        print(f"{name:<12} {rate:>11.2f} {rate / baseline_rate:>8.2f}x {diff:>12.2f}")


if __name__ == "__main__":
    main()
