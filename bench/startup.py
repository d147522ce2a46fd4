"""How long a newcomer waits: `loraforge run` on 3 photos, a run again with nothing to do, and `--help`,
beside a plain Python script that decodes, hashes and resizes the same photos (the floor: an interpreter
start, Pillow and imagehash, and the pixel work itself).

Each command runs as its own process, the way a user types it, with no services configured: every
LORAFORGE_* and PREFECT_* variable is removed, so the catalog is SQLite and the store a folder under a
fresh LORAFORGE_HOME. A "first run" gets a new home each time (nothing cached but the OS's file cache).
Prints the median and the slowest of `--repeat` runs, and each target.

    python bench/startup.py [--repeat 5] [--executor auto]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

BASELINE = """
import sys
from pathlib import Path
import imagehash
from PIL import Image
out = Path(sys.argv[2])
out.mkdir(exist_ok=True)
for path in sorted(Path(sys.argv[1]).iterdir()):
    with Image.open(path) as image:
        image = image.convert("RGB")
        imagehash.phash(image)
        imagehash.dhash(image)
        image.resize((512, 512), Image.Resampling.LANCZOS).save(out / (path.stem + ".png"))
"""
TARGETS = {"first run": 6.0, "no-op re-run": 3.0, "--help": 1.0}


def make_photos(folder: Path) -> None:
    """Three real photos (scikit-image's), at least 512 px on their short side, as the sd15 target needs."""
    from tests.support.images import real_photo_paths

    folder.mkdir(parents=True)
    for name in ("astronaut", "coffee", "chelsea"):
        with Image.open(real_photo_paths()[name]) as image:
            image.convert("RGB").save(folder / f"{name}.jpg", quality=92)


def clean_env(home: Path, executor: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LORAFORGE_", "PREFECT_"))}
    env["LORAFORGE_HOME"] = str(home)
    env["LORAFORGE_EXECUTOR"] = executor
    return env


def timed(command: list[str], env: dict[str, str], cwd: Path) -> float:
    start = time.perf_counter()
    done = subprocess.run(command, env=env, cwd=cwd, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed ({done.returncode}):\n{done.stderr[-2000:]}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--executor", default="auto", choices=["auto", "inline", "ray"])
    args = parser.parse_args()
    exe = shutil.which("loraforge", path=str(Path(sys.executable).parent)) or "loraforge"
    work = Path(tempfile.mkdtemp(prefix="lf-bench-startup-"))
    photos = work / "photos"
    make_photos(photos)
    run = [exe, "run", str(photos), "--dataset", "bench", "--trigger", "ohwx", "--class-word", "woman"]
    run += ["--target", "sd15"]
    times: dict[str, list[float]] = {name: [] for name in ("baseline", *TARGETS)}
    for index in range(args.repeat):
        home = work / f"home{index}"
        env = clean_env(home, args.executor)
        out = work / f"out{index}"
        times["baseline"].append(
            timed([sys.executable, "-c", BASELINE, str(photos), str(work / "plain")], env, work)
        )
        times["first run"].append(timed([*run, "--out", str(out)], env, work))
        times["no-op re-run"].append(timed([*run, "--out", str(out)], env, work))
        times["--help"].append(timed([exe, "--help"], env, work))
    print(f"3 photos, {args.repeat} runs each, executor {args.executor}, cpus={os.cpu_count()}")
    print(f"{'command':<46}{'median s':>10}{'max s':>9}{'target s':>10}")
    for name, values in times.items():
        label = "plain Python: decode, hash, resize (baseline)" if name == "baseline" else f"loraforge {name}"
        target = f"{TARGETS[name]:.1f}" if name in TARGETS else "-"
        print(f"{label:<46}{statistics.median(values):>10.2f}{max(values):>9.2f}{target:>10}")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
