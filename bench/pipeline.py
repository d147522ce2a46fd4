"""The whole pipeline on ~500 pictures: the `build-dataset` flow (Prefect + Ray) beside the same stages
run inline in one process, plus the number of Prefect task runs the flow created.

The inline baseline runs the very same flow code with orchestration taken out, as `loraforge run` does with
no Prefect server configured (LORAFORGE_ORCHESTRATION=local: every flow and task called as its plain
function, artifacts skipped), and LORAFORGE_EXECUTOR=inline keeps per-image work in this process. Both
runs start from an empty catalog and store; the corpus is mostly distinct pictures (structured noise) with a
few real photos, some with faces.

    python bench/pipeline.py [--images 500] [--shard-size 125]
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def make_corpus(folder: Path, count: int) -> None:
    from tests.support.images import real_photo_paths

    folder.mkdir(parents=True)
    photos = [Image.open(path).convert("RGB") for path in real_photo_paths().values()]
    rng = np.random.default_rng(0)
    for index in range(count):
        width, height = [(960, 720), (720, 960), (1024, 1024), (1280, 720)][index % 4]
        if index % 10 == 0:
            photo = photos[(index // 10) % len(photos)]
            x0, y0 = rng.integers(0, photo.width // 8), rng.integers(0, photo.height // 8)
            image = photo.crop((x0, y0, photo.width - x0, photo.height - y0)).resize((width, height))
        else:
            coarse = rng.integers(0, 255, size=(height // 48, width // 48, 3), dtype=np.uint8)
            image = Image.fromarray(coarse).resize((width, height), Image.Resampling.BICUBIC)
            detail = rng.normal(0, 14, size=(height, width, 3))
            image = Image.fromarray(np.clip(np.asarray(image, np.float32) + detail, 0, 255).astype(np.uint8))
        out = io.BytesIO()
        image.save(out, format="JPEG", quality=90)
        (folder / f"img_{index:04d}.jpg").write_bytes(out.getvalue())


def configure(home: Path, executor: str) -> None:
    os.environ["LORAFORGE_HOME"] = str(home)
    os.environ["LORAFORGE_EXECUTOR"] = executor
    from loraforge.config import get_settings
    from loraforge.stages.context import reset_contexts

    get_settings.cache_clear()
    reset_contexts()


def build_kwargs(corpus: Path, out: Path, shard_size: int) -> dict[str, Any]:
    """The flow's arguments, the dataset created first as `loraforge run` does."""
    from loraforge.stages.context import open_context
    from loraforge.stages.datasets import ensure_dataset
    from loraforge.stages.options import BuildOptions

    options = BuildOptions(
        sources=[str(corpus)],
        trigger="ohwx",
        class_word="person",
        target="sdxl",
        captioner="template",
        format="kohya",
        shard_size=shard_size,
    )
    with open_context().catalog.session() as session:
        dataset_id = ensure_dataset(session, "bench", trigger="ohwx", class_word="person", target="sdxl").id
    return {"dataset_id": dataset_id, "options": options, "out": str(out)}


def count_task_runs() -> int:
    from prefect.client.orchestration import get_client

    count, page = 0, 200  # the API serves at most 200 runs per request
    with get_client(sync_client=True) as client:
        while batch := client.read_task_runs(limit=page, offset=count):
            count += len(batch)
    return count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=500)
    parser.add_argument("--shard-size", type=int, default=125)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="lf-bench-pipeline-"))
    corpus = work / "corpus"
    make_corpus(corpus, args.images)
    os.environ["PREFECT_HOME"] = str(work / "prefect")  # a fresh Prefect database: count only our runs
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    from flows import configure_prefect
    from loraforge.config import get_settings

    configure_prefect(get_settings())
    from ray_tasks import ensure_ray

    start = time.perf_counter()
    ensure_ray()
    ray_start_s = time.perf_counter() - start
    from flows.build_dataset import build_dataset_flow

    configure(work / "warm", "ray")
    start = time.perf_counter()
    build_dataset_flow(**build_kwargs(_one_picture(corpus, work), work / "warm-out", args.shard_size))
    warm_s = time.perf_counter() - start
    warm_tasks = count_task_runs()

    configure(work / "orchestrated", "ray")
    start = time.perf_counter()
    summary = build_dataset_flow(**build_kwargs(corpus, work / "out-orchestrated", args.shard_size))
    orchestrated_s = time.perf_counter() - start
    task_runs = count_task_runs() - warm_tasks

    from flows.orchestration import run_flow

    os.environ["LORAFORGE_ORCHESTRATION"] = "local"
    configure(work / "inline", "inline")
    start = time.perf_counter()
    inline_summary = run_flow(
        build_dataset_flow, **build_kwargs(corpus, work / "out-inline", args.shard_size)
    )
    inline_s = time.perf_counter() - start
    assert inline_summary["exported"] == summary["exported"], (inline_summary, summary)

    shards = -(-args.images // args.shard_size)
    print(f"corpus: {args.images} JPEGs (0.7-1 MP), shard size {args.shard_size}; cpus={os.cpu_count()}")
    print(f"ray start-up {ray_start_s:.1f} s; Prefect warm-up run on 1 picture {warm_s:.1f} s (excluded)")
    print(
        f"summary: kept {summary['kept']}, duplicates {summary['duplicates']}, "
        f"rejected {summary['rejected']}, captioned {summary['captioned']}, exported {summary['exported']}"
    )
    print(f"{'path':<52}{'seconds':>10}{'images/s':>10}")
    print(f"{'stages inline in one process (baseline)':<52}{inline_s:>10.1f}{args.images / inline_s:>10.1f}")
    print(
        f"{'build-dataset flow (Prefect subflows + Ray)':<52}{orchestrated_s:>10.1f}"
        f"{args.images / orchestrated_s:>10.1f}"
    )
    print(f"ratio orchestrated / inline: {orchestrated_s / inline_s:.2f} (target <= 1.25)")
    print(f"prefect task runs: {task_runs} (stages x shards = 5 x {shards} = {5 * shards})")
    shutil.rmtree(work, ignore_errors=True)


def _one_picture(corpus: Path, work: Path) -> Path:
    folder = work / "one"
    folder.mkdir(exist_ok=True)
    shutil.copy(corpus / "img_0001.jpg", folder / "one.jpg")
    return folder


if __name__ == "__main__":
    main()
