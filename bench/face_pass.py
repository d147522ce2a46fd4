"""The identity filter's face pass of the curate flow: the pictures' face vectors found by FaceEmbedStage on
a Ray actor pool, beside the same stage run in one process (what the decide step did before: the baseline),
measured in the same run on the same pictures.

    python bench/face_pass.py [--copies 2] [--pools 1,2]

The pictures are bench/identity.py's set (43 photos of three people and of no one, as JPEG), `--copies`
times, in a local object store. Each Ray figure includes starting the pool (each actor loads dlib's models,
about a second); Ray itself is started before the clock. On a cluster the pool has one actor per free CPU
(ray_tasks/runner.py), so the pass scales with the workers; the baseline cannot.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))


def store_pictures(root: Path, copies: int) -> list[dict[str, object]]:
    from identity import build_set

    from tests.support.images import encode

    items = []
    for copy in range(copies):
        for index, picture in enumerate(build_set()):
            key = f"originals/{copy:02d}-{index:03d}.jpg"
            path = root / key
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(encode(picture.image.convert("RGB"), "JPEG", quality=90))
            items.append(
                {
                    "image_id": f"{copy}-{index}",
                    "object_key": key,
                    "width": picture.image.width,
                    "height": picture.image.height,
                    "filename": picture.name,
                }
            )
    return items


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--copies", type=int, default=2)
    parser.add_argument("--pools", default="1,2", help="Ray actor pool sizes to measure, comma-separated.")
    args = parser.parse_args()

    from loraforge.models.identity import DLIB_MODEL
    from loraforge.stages.face_embed import FaceEmbedStage
    from loraforge.stages.runner import run_inline
    from loraforge.storage import StoreConfig
    from ray_tasks.runner import ensure_ray, run_on_ray

    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        items = store_pictures(root, args.copies)
        stage = FaceEmbedStage(
            store_config=StoreConfig(url=f"file://{root}"), max_pixels=80_000_000, model=DLIB_MODEL
        )
        print(f"{len(items)} pictures, {os.cpu_count()} CPUs\n")
        print(f"{'where':<34} {'seconds':>8} {'pictures/s':>11} {'faces':>6}")

        def report(where: str, seconds: float, results: list[dict[str, object]]) -> None:
            errors = [r for r in results if r.get("error")]
            assert not errors, errors[:1]
            faces = sum(len(r["faces"]["faces"]) for r in results)  # type: ignore[index]
            print(f"{where:<34} {seconds:>8.1f} {len(items) / seconds:>11.1f} {faces:>6}")

        start = time.perf_counter()
        results = run_inline(stage, items)  # loads the model in this process, as the decide step did
        report("one process (baseline)", time.perf_counter() - start, results)

        ensure_ray()
        for size in (int(value) for value in args.pools.split(",")):
            start = time.perf_counter()
            results = run_on_ray(stage, items, pool_size=size)
            report(f"Ray actor pool of {size}", time.perf_counter() - start, results)


if __name__ == "__main__":
    main()
