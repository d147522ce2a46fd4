"""Benchmark: zip export throughput and peak memory of LoRA Forge's exporters beside plain `zipfile`.

Generates N ~1 MP JPEGs (default 200) with captions in a temporary folder, then writes the same files into a
zip with each contender, every run in a fresh subprocess so peak RSS is its own:

- zipfile STORED: `zipfile.ZipFile.write` per image with ZIP_STORED, captions deflated (the same compression
  choice the exporter makes: JPEG does not shrink under deflate);
- zipfile DEFLATE: images deflated too, for reference;
- loraforge replicate / kohya: `export_dataset(..., sink=ZipSink(file))`, which also validates, records a
  sha256 per member and writes the trainer's config files; image hashes come from the catalog (an original's
  sha256 is known since ingest), captions and configs are hashed;
- loraforge replicate-rehash: the same, but every image re-hashed (what exporting derivatives costs);
- stage replicate: the whole stage path, `plan_export` + `write_export` against an embedded catalog (SQLite)
  and object store (folder) filled beforehand: catalog reads, originals read from the store, the zip written
  to a temporary file, stored with `put_file`, the manifest stored and the version row committed.

Throughput is input bytes (images + captions) per second of wall time, median of --rounds runs.
Peak RSS growth is the process's peak RSS minus its RSS just before the export began.

    python bench/export.py [--images 200] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

CONTENDERS = [
    "zipfile-stored",
    "zipfile-deflate",
    "loraforge-replicate",
    "loraforge-kohya",
    "loraforge-replicate-rehash",
    "stage-replicate",
]


def generate(folder: Path, count: int) -> int:
    """~1 MP photo-like JPEGs (smooth gradients plus grain) and one caption each; returns total bytes."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    height, width = 864, 1152
    yy, xx = np.mgrid[0 : 2 * height, 0 : 2 * width].astype(np.float32)
    field = np.stack([127 + 90 * np.sin(xx / (70 + 9 * c) + yy / (110 + 5 * c)) for c in range(3)], axis=-1)
    grain = rng.normal(0, 12, size=(2 * height, 2 * width, 3)).astype(np.float32)
    total = 0
    for index in range(count):
        # Different windows of the large fields make every picture distinct at little cost.
        y0, y1 = rng.integers(0, height, size=2)
        x0, x1 = rng.integers(0, width, size=2)
        pixels = field[y0 : y0 + height, x0 : x0 + width] + grain[y1 : y1 + height, x1 : x1 + width]
        image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
        path = folder / f"photo_{index:04d}.jpg"
        image.save(path, format="JPEG", quality=90)
        caption = f"ohwx person, photo {index}, outdoors, soft light, looking at the camera"
        (folder / f"photo_{index:04d}.txt").write_text(caption, encoding="utf-8")
        total += path.stat().st_size + len(caption.encode())
    return total


def memory_kib(field: str) -> int:
    """VmRSS (now) or VmHWM (peak) of this process; unlike ru_maxrss, VmHWM is not inherited over exec."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} missing from /proc/self/status")


def run_one(contender: str, source: Path, target: Path) -> dict[str, float]:
    """One timed zip of every file in `source` (runs inside the child process)."""
    images = sorted(source.glob("*.jpg"))
    if contender.startswith("loraforge"):
        import hashlib

        from loraforge.exporters import ExportItem, ExportSpec, ZipSink, export_dataset

        def item(path: Path) -> ExportItem:
            # The catalog holds every original's sha256 from ingest; only the hashing contender ignores it.
            sha = hashlib.sha256(path.read_bytes()).hexdigest()
            return ExportItem(
                image_id=path.stem,
                stem=f"{path.stem}_{sha[:8]}",
                source_sha256=sha,
                caption=path.with_suffix(".txt").read_text(encoding="utf-8"),
                bucket=(1152, 864),
                width=1152,
                height=864,
                read=path.read_bytes,
                source_format="jpeg",
                content_sha256=None if contender.endswith("-rehash") else sha,
            )

        fmt = contender.removeprefix("loraforge-").removesuffix("-rehash")
        spec = ExportSpec(
            format=fmt, trigger_word="ohwx", class_word="person", target_model="sdxl", repeats=1
        )
        items = [item(path) for path in images]
    if contender == "stage-replicate":
        stage_run = prepare_stage(images, target.parent / f"{target.stem}-home")
    rss_before = memory_kib("VmRSS")
    start = time.perf_counter()
    if contender.startswith("zipfile"):
        image_compression = zipfile.ZIP_STORED if contender == "zipfile-stored" else zipfile.ZIP_DEFLATED
        with zipfile.ZipFile(target, "w", allowZip64=True) as archive:
            for path in images:
                archive.write(path, path.name, compress_type=image_compression)
                caption = path.with_suffix(".txt")
                archive.write(caption, caption.name, compress_type=zipfile.ZIP_DEFLATED)
    elif contender == "stage-replicate":
        stored = stage_run()
    else:
        with open(target, "wb") as handle:
            export_dataset(items, spec, sink=ZipSink(handle))
    seconds = time.perf_counter() - start
    peak_kib = memory_kib("VmHWM")
    if contender == "stage-replicate":
        import shutil

        shutil.move(stored, target)
        shutil.rmtree(target.parent / f"{target.stem}-home")
    return {
        "seconds": seconds,
        "rss_before_mib": rss_before / 1024,
        "peak_mib": peak_kib / 1024,
        "growth_mib": (peak_kib - rss_before) / 1024,
        "zip_mib": target.stat().st_size / 2**20,
    }


def prepare_stage(images: list[Path], home: Path):  # noqa: ANN201 - returns the timed callable
    """Fill an embedded catalog and store with the images (untimed); returns the timed stage run."""
    import hashlib
    import os

    os.environ["LORAFORGE_HOME"] = str(home)
    from loraforge.catalog import queries
    from loraforge.catalog.models import Caption, Dataset, Image
    from loraforge.stages.context import open_context
    from loraforge.stages.export import ExportRequest, plan_export, write_export
    from loraforge.storage.keys import original_key

    ctx = open_context()
    with ctx.catalog.session() as session:
        dataset = queries.get_or_create_dataset(session, "bench", trigger_word="ohwx", class_word="person")
        for path in images:
            data = path.read_bytes()
            sha = hashlib.sha256(data).hexdigest()
            ctx.store.put(original_key(sha), data)
            image = Image(
                dataset_id=dataset.id,
                sha256=sha,
                object_key=original_key(sha),
                original_filename=path.name,
                source_kind="file",
                source_uri=str(path),
                width=1152,
                height=864,
                format="jpeg",
                bytes=len(data),
                status="kept",
            )
            session.add(image)
            session.flush()
            text = path.with_suffix(".txt").read_text(encoding="utf-8")
            session.add(Caption(image_id=image.id, variant="bench", text=text, is_active=True))
        dataset_id = dataset.id

    def run() -> Path:
        with ctx.catalog.session() as session:
            dataset = session.get(Dataset, dataset_id)
            plan = plan_export(session, dataset, ExportRequest("replicate", repeats=1), ctx.store)
        return home / "objects" / write_export(ctx, plan).object_key

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--child", nargs=3, metavar=("CONTENDER", "SOURCE", "TARGET"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        contender, source, target = args.child
        print(json.dumps(run_one(contender, Path(source), Path(target))))
        return

    with tempfile.TemporaryDirectory(prefix="bench-export-") as tmp:
        source = Path(tmp) / "src"
        source.mkdir()
        started = time.perf_counter()
        input_bytes = generate(source, args.images)
        print(
            f"dataset: {args.images} JPEGs of 1152x864 (~1 MP) + captions, {input_bytes / 2**20:.1f} MiB, "
            f"generated in {time.perf_counter() - started:.1f} s"
        )
        runs: dict[str, list[dict[str, float]]] = {name: [] for name in CONTENDERS}
        for round_index in range(args.rounds):
            for contender in CONTENDERS:  # interleaved so drift in disk or CPU load hits every contender
                target = Path(tmp) / f"{contender}-{round_index}.zip"
                child = subprocess.run(
                    [sys.executable, __file__, "--child", contender, str(source), str(target)],
                    check=True,
                    capture_output=True,
                    text=True,
                )
                runs[contender].append(json.loads(child.stdout.strip().splitlines()[-1]))
                target.unlink()
        report(runs, input_bytes, args.rounds)


def report(runs: dict[str, list[dict[str, float]]], input_bytes: int, rounds: int) -> None:
    baseline = None
    print(f"\nmedian of {rounds} rounds, each run in a fresh process; images STORED unless noted")
    print(
        f"{'contender':<28}{'MB/s':>9}{'x stored':>10}{'zip MiB':>9}{'RSS before':>12}{'peak RSS':>10}"
        f"{'growth':>9}"
    )
    for contender, results in runs.items():
        seconds = statistics.median(r["seconds"] for r in results)
        rate = input_bytes / 1e6 / seconds
        baseline = baseline or rate
        label = contender
        print(
            f"{label:<28}{rate:>9.1f}{rate / baseline:>10.2f}{results[0]['zip_mib']:>9.1f}"
            f"{max(r['rss_before_mib'] for r in results):>11.1f}M"
            f"{max(r['peak_mib'] for r in results):>9.1f}M"
            f"{max(r['growth_mib'] for r in results):>8.1f}M"
        )
    archive_mib = input_bytes / 2**20
    for contender in ("loraforge-replicate", "loraforge-kohya"):
        results = runs[contender]
        ratio = statistics.median(r["seconds"] for r in runs["zipfile-stored"]) / statistics.median(
            r["seconds"] for r in results
        )
        growth = max(r["growth_mib"] for r in results)
        verdict = "PASS" if ratio >= 0.8 and growth < archive_mib / 4 else "FAIL"
        print(
            f"{verdict} {contender}: {ratio:.2f}x zipfile-stored (target >= 0.8x), "
            f"RSS growth {growth:.1f} MiB "
            f"for a {archive_mib:.0f} MiB archive"
        )


if __name__ == "__main__":
    main()
