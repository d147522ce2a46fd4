"""Benchmark: pictures per second through the bucket stage on Ray, beside a plain single-process loop.

Inputs are camera-sized JPEGs (about 12 MP, several aspect ratios) made from the real photos that ship inside
scikit-image, scikit-learn and matplotlib, stored in a local object store as ingest leaves them. Contenders,
all measured in this run on the same pictures:

- plain loop: one process; get the bytes, full decode, EXIF transpose, crop the box the stage chose, one
  LANCZOS resize to the bucket, encode (JPEG q95 4:4:4), store. No face detection: the same crop and resize.
- stage inline: `BucketStage` in this process (`run_inline`): face detection (OpenCV), bucket choice, crop
  box, reduced-size decode and render, encode, store.
- stage on Ray: the same stage built by `stages.bucket.build_bucket_stage` and run shard by shard through
  `ray_tasks.run_stage`, as the `bucket` flow does (no Prefect or catalog writes). Ray is started before any
  timing; its start time is printed on its own line. Its workers run at the loops' priority (niceness 0,
  --ray-niceness to change): Ray's default of 15 hands the CPU to any other process on a shared machine.

A first Ray run warms the workers (imports, detector load; its rate is printed on its own line); then
--rounds rounds run the three contenders in turn, so that load from other processes falls on all alike, and
the figures are medians. The mean absolute pixel difference (0-255) between the stage's and the plain loop's
outputs shows what the reduced decode costs in quality.

    python bench/bucket.py [--images 16] [--rounds 3] [--target sdxl] [--shard-size 1000]
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps

from flows._common import shards
from loraforge.config import load_settings
from loraforge.imaging.resize import encode
from loraforge.stages.bucket import BucketStage, build_bucket_stage
from loraforge.stages.context import Context, open_context
from loraforge.stages.options import BucketOptions
from loraforge.stages.runner import run_inline
from ray_tasks import ensure_ray, run_stage

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


def store_inputs(ctx: Context, inputs: list[bytes]) -> list[dict[str, Any]]:
    items = []
    for index, data in enumerate(inputs):
        key = f"originals/bench/{index:04d}"
        ctx.store.put(key, data, content_type="image/jpeg")
        width, height = Image.open(io.BytesIO(data)).size
        items.append({"image_id": f"img{index:04d}", "object_key": key, "width": width, "height": height})
    return items


def plain_loop(ctx: Context, jobs: list[dict[str, Any]]) -> list[bytes]:
    """What a simple script does for the same crop and resize."""
    outputs = []
    for job in jobs:
        image = Image.open(io.BytesIO(ctx.store.get(job["object_key"])))
        image = (ImageOps.exif_transpose(image) or image).convert("RGB")
        size = (job["bucket_width"], job["bucket_height"])
        out = image.crop(tuple(job["box"])).resize(size, Image.Resampling.LANCZOS)
        payload = encode(out, "jpeg", quality=95)
        ctx.store.put(f"derived/bench-plain/{job['image_id']}.jpg", payload, content_type="image/jpeg")
        outputs.append(payload)
    return outputs


def on_ray(stage: BucketStage, items: list[dict[str, Any]], shard_size: int) -> list[dict[str, Any]]:
    results: list[dict[str, Any]] = []
    for shard in shards(items, shard_size):
        results += run_stage(stage, shard, executor="ray")
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--target", default="sdxl")
    parser.add_argument("--megapixels", type=float, default=12.0)
    parser.add_argument("--shard-size", type=int, default=1000)
    parser.add_argument("--ray-cpus", type=int, default=None, help="CPUs of the local Ray (default: all).")
    parser.add_argument(
        "--ray-niceness",
        type=int,
        default=0,
        help="Niceness of Ray's workers (Ray's own default is 15); 0 = the same priority as the loops.",
    )
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-bucket-") as home:
        run(args, Path(home))


def run(args: argparse.Namespace, home: Path) -> None:
    ctx = open_context(load_settings(home=home, executor="ray", ray_num_cpus=args.ray_cpus))
    inputs = make_inputs(args.images, megapixels=args.megapixels)
    items = store_inputs(ctx, inputs)
    stage = build_bucket_stage(ctx, "bench", BucketOptions(target=args.target), target=args.target)
    size_mb = sum(len(d) for d in inputs) / len(inputs) / 1e6
    print(
        f"{len(items)} JPEGs of ~{args.megapixels:.0f} MP ({size_mb:.1f} MB each), target {args.target}, ",
        end="",
    )
    print(f"detector {stage.detector}, {args.rounds} rounds, store {ctx.store_config.url}")

    # Ray starts its workers at niceness 15. On a shared machine they then lose the CPU to every other
    # process while the single-process contenders run at 0: the comparison would measure the scheduler.
    os.environ["RAY_worker_niceness"] = str(args.ray_niceness)
    start = time.perf_counter()
    ensure_ray(num_cpus=args.ray_cpus)
    import ray

    cpus = ray.cluster_resources().get("CPU", 0)
    elapsed = time.perf_counter() - start
    print(f"Ray start: {elapsed:.2f} s ({cpus:.0f} CPUs, worker niceness {args.ray_niceness})")

    start = time.perf_counter()
    results = on_ray(stage, items, args.shard_size)
    cold_rate = len(items) / (time.perf_counter() - start)
    failures = [r for r in results if r["error"]]
    assert not failures, failures[:3]
    jobs = results
    contenders: dict[str, Callable[[], Any]] = {
        "plain loop (1 process)": lambda: plain_loop(ctx, jobs),
        "bucket stage inline": lambda: run_inline(stage, items),
        "bucket stage on Ray": lambda: on_ray(stage, items, args.shard_size),
    }
    # Rounds interleave the contenders so that load from other processes falls on all of them alike.
    rates: dict[str, list[float]] = {name: [] for name in contenders}
    outputs: dict[str, Any] = {}
    for _ in range(args.rounds):
        for name, run in contenders.items():
            start = time.perf_counter()
            outputs[name] = run()
            rates[name].append(len(items) / (time.perf_counter() - start))
    plain_out = outputs["plain loop (1 process)"]

    diffs = []
    for job, payload in zip(jobs, plain_out, strict=True):
        ours = Image.open(io.BytesIO(ctx.store.get(job["derivative_key"]))).convert("RGB")
        theirs = Image.open(io.BytesIO(payload)).convert("RGB")
        assert ours.size == theirs.size == (job["bucket_width"], job["bucket_height"])
        diffs.append(float(np.abs(np.asarray(ours, np.int16) - np.asarray(theirs, np.int16)).mean()))
    baseline = statistics.median(rates["plain loop (1 process)"])
    print(f"{'contender':<28} {'pictures/s':>11} {'vs plain':>9}   rounds")
    for name, measured in rates.items():
        rate = statistics.median(measured)
        each = " ".join(f"{r:.2f}" for r in measured)
        print(f"{name:<28} {rate:>11.2f} {rate / baseline:>8.2f}x   {each}")
    print(f"first Ray run (cold workers, not in the figures above): {cold_rate:.2f} pictures/s")
    faces = sum(len(r["faces"]) for r in results)
    print(f"faces found: {faces}; mean |stage - plain| pixel difference: {statistics.mean(diffs):.2f} / 255")
    print(
        f"RATIO stage-on-Ray / plain loop: {statistics.median(rates['bucket stage on Ray']) / baseline:.2f}x"
    )


if __name__ == "__main__":
    main()
