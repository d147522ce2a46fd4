"""Ingest throughput: the `ingest` flow (Prefect + Ray, embedded catalog and store) beside a plain loop.

The plain loop does the same per-image work in one process, the obvious way: read, sha256, full decode
with EXIF orientation, perceptual hash, 256 px WebP thumbnail. The flow does it on Ray workers with
reduced-size JPEG decoding, then writes the catalog rows. Ray and Prefect start-up are timed separately
(a warm-up flow run on one picture), since a long-lived worker pays them once.

    python bench/ingest.py [--images 200] [--workdir /tmp/lf-bench-ingest]
"""

from __future__ import annotations

import argparse
import hashlib
import io
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def make_corpus(folder: Path, count: int) -> int:
    """JPEGs of 1-2 megapixels with photo-like structure; returns total bytes."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    sizes = [(1600, 1000), (1200, 1200), (1000, 1500), (1920, 1080)]
    total = 0
    for index in range(count):
        width, height = sizes[index % len(sizes)]
        coarse = rng.integers(0, 255, size=(height // 40, width // 40, 3), dtype=np.uint8)
        image = Image.fromarray(coarse).resize((width, height), Image.Resampling.BICUBIC)
        fine = rng.normal(0, 12, size=(height, width, 3))
        pixels = np.clip(np.asarray(image, dtype=np.float32) + fine, 0, 255).astype(np.uint8)
        out = io.BytesIO()
        Image.fromarray(pixels).save(out, format="JPEG", quality=90)
        (folder / f"img_{index:04d}.jpg").write_bytes(out.getvalue())
        total += out.tell()
    return total


def plain_loop(folder: Path, out_dir: Path) -> float:
    import imagehash

    out_dir.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    for path in sorted(folder.iterdir()):
        data = path.read_bytes()
        digest = hashlib.sha256(data).hexdigest()
        image = ImageOps.exif_transpose(Image.open(io.BytesIO(data))).convert("RGB")
        str(imagehash.phash(image))
        thumb = image.copy()
        thumb.thumbnail((256, 256), Image.Resampling.LANCZOS)
        buffer = io.BytesIO()
        thumb.save(buffer, format="WEBP", quality=80, method=4)
        (out_dir / f"{digest}.webp").write_bytes(buffer.getvalue())
        (out_dir / digest).write_bytes(data)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="lf-bench-ingest-"))
    shutil.rmtree(workdir, ignore_errors=True)
    corpus = workdir / "corpus"
    total_bytes = make_corpus(corpus, args.images)
    warmup = workdir / "warmup"
    warmup.mkdir()
    shutil.copy(next(corpus.iterdir()), warmup / "one.jpg")

    os.environ["LORAFORGE_HOME"] = str(workdir / "home")
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    from flows import configure_prefect
    from loraforge.config import get_settings

    configure_prefect(get_settings())
    from flows.ingest import ingest_flow
    from loraforge.stages.context import open_context
    from loraforge.stages.datasets import ensure_dataset
    from loraforge.stages.options import IngestOptions

    with open_context().catalog.session() as session:
        warmup_id, bench_id = ensure_dataset(session, "warmup").id, ensure_dataset(session, "bench").id

    start = time.perf_counter()
    ingest_flow(warmup_id, IngestOptions(sources=[str(warmup)]))
    startup_s = time.perf_counter() - start

    start = time.perf_counter()
    summary = ingest_flow(bench_id, IngestOptions(sources=[str(corpus)]))
    flow_s = time.perf_counter() - start
    assert summary["added"] == args.images, summary

    baseline_s = plain_loop(corpus, workdir / "plain")

    megapixels = (
        sum(Image.open(p).size[0] * Image.open(p).size[1] for p in corpus.iterdir()) / 1e6 / args.images
    )
    print(
        f"corpus: {args.images} JPEGs, {megapixels:.2f} MP average, {total_bytes / 1e6:.0f} MB; "
        f"cpus={os.cpu_count()}"
    )
    print(f"ray + prefect start-up (warm-up run on 1 picture): {startup_s:.1f} s")
    print(f"{'path':<44}{'seconds':>10}{'images/s':>12}")
    print(f"{'plain single-process loop (baseline)':<44}{baseline_s:>10.2f}{args.images / baseline_s:>12.1f}")
    print(f"{'loraforge ingest flow (Prefect + Ray)':<44}{flow_s:>10.2f}{args.images / flow_s:>12.1f}")
    print(f"ratio loraforge / baseline: {baseline_s / flow_s:.2f}x")


if __name__ == "__main__":
    main()
