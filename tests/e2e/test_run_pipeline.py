"""`loraforge run` end to end as a user runs it: real photos, planted copies, a corrupt file, a killed run."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import tomllib
from pathlib import Path

from PIL import Image, ImageOps
from sqlalchemy import create_engine, func, select

from loraforge.catalog.models import Caption, Derivative
from tests.conftest import run_cli
from tests.support.images import corrupt_jpeg, noise_image, real_photo, real_photo_paths

TRIGGER = "ohwx"


def make_photos(folder: Path) -> None:
    """Seven real photos, three planted duplicates and one corrupt file."""
    folder.mkdir(parents=True)
    for path in real_photo_paths().values():
        shutil.copy(path, folder / path.name)
    real_photo("china").resize((480, 320)).save(folder / "china_small.jpg", quality=85)  # near duplicate
    ImageOps.mirror(real_photo("flower")).save(folder / "flower_mirrored.jpg", quality=92)  # mirrored copy
    shutil.copy(real_photo_paths()["coffee"], folder / "coffee_again.png")  # exact duplicate
    (folder / "broken.jpg").write_bytes(corrupt_jpeg())


def catalog_counts(url: str) -> tuple[int, int]:
    engine = create_engine(url)
    with engine.connect() as conn:
        captions = conn.scalar(select(func.count()).select_from(Caption)) or 0
        derivatives = conn.scalar(select(func.count()).select_from(Derivative)) or 0
    engine.dispose()
    return captions, derivatives


def test_run_builds_a_kohya_dataset_and_a_rerun_only_exports(
    tmp_path: Path, stack_env: dict[str, str]
) -> None:
    photos, out = tmp_path / "alice", tmp_path / "alice-lora"
    make_photos(photos)
    args = [
        "run",
        str(photos),
        "--dataset",
        "alice",
        "--trigger",
        TRIGGER,
        "--class-word",
        "woman",
        "--target",
        "sdxl",
        "--format",
        "kohya",
        "--max-upscale",
        "4",  # the test photos are 300-640 pixels: sdxl needs them up to 2.4 times larger
        "--out",
        str(out),
        "--json",
    ]
    first = run_cli(*args, env=stack_env, timeout=900)
    assert first.returncode == 0, first.stderr[-3000:]
    summary = json.loads(first.stdout)
    assert summary["found"] == 11 and summary["failed_to_ingest"] == 1
    # The exact copy is skipped at ingest; the resized and the mirrored copy are found at curation.
    assert summary["copies_skipped_at_ingest"] == 1 and summary["duplicates"] >= 2
    reasons = {row["filename"]: row["reason"] for row in summary["not_exported"]}
    assert reasons["broken.jpg"].startswith("failed to ingest: ")
    assert reasons["coffee_again.png"] == "exact copy of coffee.png"
    assert reasons["china_small.jpg"].startswith("near copy of china")
    left_out = summary["copies_skipped_at_ingest"] + summary["duplicates"] + summary["rejected"]
    assert len(reasons) == summary["failed_to_ingest"] + left_out
    report = json.loads(run_cli("report", "--dataset", "alice", "--json", env=stack_env).stdout)
    assert report["counts"].get("duplicate", 0) == summary["duplicates"]
    assert report["counts"].get("rejected", 0) == summary["rejected"]
    assert summary["exported"] == summary["kept"] == summary["captioned"] == 7 - summary["rejected"]

    config = tomllib.loads((out / "dataset_config.toml").read_text())
    subset = config["datasets"][0]["subsets"][0]
    image_dir = (
        out / subset["image_dir"]
        if not Path(subset["image_dir"]).is_absolute()
        else Path(subset["image_dir"])
    )
    assert subset["caption_extension"] == ".txt"
    images = sorted(p for p in image_dir.iterdir() if p.suffix in (".jpg", ".png"))
    assert len(images) == summary["exported"]
    names = {p.stem.rsplit("_", 1)[0] for p in images}
    assert not {"broken", "coffee_again", "china_small", "flower_mirrored"} & names
    buckets = {f"{w}x{h}" for w, h in ((b.split("x")) for b in summary["per_bucket"])}
    for image_path in images:
        caption = image_path.with_suffix(".txt").read_text()
        assert caption.split().count(TRIGGER) == 1 or caption.count(TRIGGER) == 1, caption
        with Image.open(image_path) as image:
            assert f"{image.width}x{image.height}" in buckets
            assert image.width % 32 == 0 and image.height % 32 == 0

    before = catalog_counts(stack_env["LORAFORGE_CATALOG_URL"])
    second = run_cli(*args[:-3], "--out", str(tmp_path / "again"), "--json", env=stack_env, timeout=900)
    assert second.returncode == 0, second.stderr[-3000:]
    again = json.loads(second.stdout)
    assert again["added"] == 0 and again["export_id"] != summary["export_id"]
    assert again["exported"] == summary["exported"]
    assert catalog_counts(stack_env["LORAFORGE_CATALOG_URL"]) == before  # no caption or crop redone
    diff = run_cli(
        "exports", "diff", "--dataset", "alice", summary["export_id"], again["export_id"], env=stack_env
    )
    assert diff.returncode == 0 and "identical" in diff.stdout.lower(), diff.stdout + diff.stderr


def test_killed_run_resumes_without_redoing_captions(tmp_path: Path) -> None:
    from tests.support.tiny_models import BlipSize, build_tiny_blip

    model = build_tiny_blip(
        tmp_path / "blip", BlipSize(hidden=256, layers=4, heads=4, image_size=224, patch_size=16)
    )
    photos = tmp_path / "many"
    photos.mkdir()
    for seed in range(24):
        noise_image(640 + 16 * seed, 480, seed=100 + seed).save(photos / f"p{seed:02d}.jpg", quality=90)
    home = tmp_path / "home"
    env = {k: v for k, v in os.environ.items() if not k.startswith("LORAFORGE_")}
    env |= {"LORAFORGE_HOME": str(home), "LORAFORGE_SHARD_SIZE": "8"}
    exe = str(Path(sys.executable).parent / "loraforge")
    args = [
        exe,
        "run",
        str(photos),
        "--dataset",
        "kill",
        "--trigger",
        TRIGGER,
        "--captioner",
        "blip",
        "--model",
        str(model),
        "--caption-batch-size",
        "2",
        "--format",
        "hf",
        "--max-upscale",
        "4",
        "--out",
        str(tmp_path / "out"),
    ]
    process = subprocess.Popen(
        args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True
    )
    url = f"sqlite:///{home / 'catalog.sqlite3'}"
    deadline = time.monotonic() + 600
    try:
        while time.monotonic() < deadline and process.poll() is None:
            if (home / "catalog.sqlite3").exists() and 2 <= _caption_count(url) < 20:
                break
            time.sleep(0.2)
        assert process.poll() is None, "the run finished before it could be killed"
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    survivors = _caption_rows(url)
    assert 2 <= len(survivors) < 24

    rerun = subprocess.run(args + ["--json"], env=env, capture_output=True, text=True, timeout=900)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert json.loads(rerun.stdout)["captioned"] == 24
    after = _caption_rows(url)
    assert len(after) == 24
    assert {row for row in after if row[0] in {s[0] for s in survivors}} == set(survivors)  # kept, not redone


def _caption_count(url: str) -> int:
    return len(_caption_rows(url))


def _caption_rows(url: str) -> set[tuple[str, str, str]]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(select(Caption.id, Caption.image_id, Caption.text)).all()
    except Exception:  # noqa: BLE001 - the catalog may not have its tables yet
        return set()
    finally:
        engine.dispose()
    return {tuple(row) for row in rows}
