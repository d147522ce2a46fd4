"""`pip install loraforge` without the models extra: the main job works, and model features say what to
install in one line, before any stage starts.

The light install is simulated in a subprocess by an import hook (a `sitecustomize` on PYTHONPATH) that
makes torch, transformers, open-clip, RetinaFace and dlib unimportable, as they are in a venv without
the extra; at exit it reports whether any of them got imported anyway.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from tests.support.images import real_photo_paths

HEAVY = ("torch", "torchvision", "transformers", "open_clip", "retinaface", "albumentations", "dlib")
BLOCKER = f"""
import atexit, os, sys
HEAVY = {HEAVY!r}

class LightInstall:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in HEAVY:
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
        return None

sys.meta_path.insert(0, LightInstall())
atexit.register(lambda: os.write(2, ("heavy imported: " + ",".join(
    m for m in HEAVY if m in sys.modules) + "\\n").encode()))
"""


@pytest.fixture
def light_env(tmp_path: Path) -> dict[str, str]:
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(BLOCKER)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LORAFORGE_", "PREFECT_API"))}
    env |= {"LORAFORGE_HOME": str(tmp_path / "home"), "PYTHONPATH": str(site)}
    return env


@pytest.fixture
def photos(tmp_path: Path) -> Path:
    folder = tmp_path / "photos"
    folder.mkdir()
    for name in ("astronaut", "coffee", "chelsea"):
        Image.open(real_photo_paths()[name]).convert("RGB").save(folder / f"{name}.jpg", quality=92)
    return folder


def loraforge(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("loraforge", path=str(Path(sys.executable).parent)) or "loraforge"
    return subprocess.run([exe, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=600)


def test_the_main_job_runs_without_the_models_extra(light_env: dict[str, str], photos: Path) -> None:
    out = photos.parent / "out"
    args = ["run", str(photos), "--dataset", "light", "--trigger", "ohwx", "--class-word", "woman"]
    done = loraforge([*args, "--target", "sd15", "--out", str(out), "--json"], light_env, photos.parent)
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads(done.stdout)
    assert summary["exported"] == 3, summary
    captions = sorted(out.rglob("*.txt"))
    assert len(captions) == 3 and all(p.read_text().startswith("ohwx woman, ") for p in captions)
    assert "heavy imported: \n" in done.stderr, done.stderr[-2000:]


@pytest.mark.parametrize(
    ("option", "feature"),
    [
        (["--captioner", "blip"], "--captioner blip needs the models extra"),
        (["--face-detector", "retinaface"], "--face-detector retinaface needs the models extra"),
    ],
)
def test_a_model_feature_names_the_extra_before_any_stage(
    light_env: dict[str, str], photos: Path, option: list[str], feature: str
) -> None:
    done = loraforge(["run", str(photos), "--dataset", "light", *option], light_env, photos.parent)
    assert done.returncode == 1
    assert feature in done.stderr and "pip install 'loraforge[models]'" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr and "ingest" not in done.stderr  # refused before the first stage
