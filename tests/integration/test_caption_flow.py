"""The caption flow on Postgres + S3 with Ray's actor pool and Prefect; a killed CLI run resumes."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import create_engine, select

from loraforge.catalog.models import Caption, Image, Task
from loraforge.errors import ModelError
from loraforge.stages.context import open_context
from tests.support.images import jpeg_bytes, noise_image, real_photo_paths
from tests.support.tiny_models import BlipSize, build_tiny_blip

pytestmark = pytest.mark.usefixtures("prefect_harness", "ray_cluster")

TRIGGER = "ohwx woman"


def ingest_folder(folder: Path) -> None:
    from flows.ingest import ingest_flow

    summary = ingest_flow(sources=[str(folder)], dataset="alice")
    assert summary["failed"] == 0


def active_captions() -> dict[str, tuple[str, str, str]]:
    """filename -> (caption id, variant, text) of each active caption."""
    with open_context().catalog.session() as session:
        rows = session.execute(
            select(Image.original_filename, Caption.id, Caption.variant, Caption.text)
            .join(Caption, Caption.image_id == Image.id)
            .where(Caption.is_active.is_(True))
        ).all()
    return {filename: (caption_id, variant, text) for filename, caption_id, variant, text in rows}


def test_caption_flow_runs_the_actor_pool_records_and_resumes(
    tmp_path: Path, stack_env: dict[str, str]
) -> None:
    from flows.caption import caption_flow

    folder = tmp_path / "alice"
    folder.mkdir()
    for name in ("astronaut", "chelsea", "coffee"):
        shutil.copy(real_photo_paths()[name], folder / real_photo_paths()[name].name)
    for seed in range(3):
        (folder / f"shot{seed}.jpg").write_bytes(jpeg_bytes(900, 600, seed=seed))
    ingest_folder(folder)
    with open_context().catalog.session() as session:
        rejected = session.scalars(select(Image).where(Image.original_filename == "shot0.jpg")).one()
        rejected.status = "rejected"
    model = build_tiny_blip(tmp_path / "tiny-blip")

    summary = caption_flow(
        dataset="alice",
        captioner="blip",
        model=str(model),
        trigger=TRIGGER,
        batch_size=2,
        pool_size=1,
        shard_size=3,
    )
    assert (summary["captioned"], summary["skipped"], summary["failed"]) == (5, 0, 0)
    assert summary["variant"] == "blip"
    captions = active_captions()
    assert set(captions) == {"astronaut.png", "chelsea.png", "coffee.png", "shot1.jpg", "shot2.jpg"}
    for _, variant, text in captions.values():
        assert variant == "blip" and text.startswith(TRIGGER) and text.count(TRIGGER) == 1
    with open_context().catalog.session() as session:
        task = session.get(Task, summary["task_id"])
        assert task is not None and task.status == "COMPLETED" and task.done == task.total == 5

    again = caption_flow(dataset="alice", captioner="blip", model=str(model), batch_size=2)
    assert (again["captioned"], again["skipped"]) == (0, 5)
    assert active_captions() == captions

    # A model that is not there fails the run at once, before Ray work, and loses nothing.
    with pytest.raises(ModelError, match="does not exist"):
        caption_flow(dataset="alice", captioner="blip", model=str(tmp_path / "missing"), variant="other")
    with open_context().catalog.session() as session:
        failed = session.scalars(select(Task).where(Task.status == "FAILED")).one()
        assert "does not exist" in (failed.error or "")
    assert active_captions() == captions


def test_a_killed_caption_command_resumes_without_redoing_finished_pictures(
    tmp_path: Path, stack_env: dict[str, str]
) -> None:
    folder = tmp_path / "many"
    folder.mkdir()
    for seed in range(24):
        noise_image(320 + 8 * seed, 240, seed=200 + seed).save(folder / f"p{seed:02d}.jpg", quality=90)
    ingest_folder(folder)
    # Big enough that 12 batches of 2 take a few seconds on a laptop CPU: room to kill the run midway.
    model = build_tiny_blip(
        tmp_path / "blip", BlipSize(hidden=128, layers=2, heads=4, image_size=96, patch_size=16)
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("LORAFORGE_")} | stack_env
    env |= running_services()
    exe = str(Path(sys.executable).parent / "loraforge")
    args = [exe, "caption", "--dataset", "alice", "--captioner", "blip", "--model", str(model)]
    args += ["--trigger", TRIGGER, "--batch-size", "2", "--pool-size", "1", "--shard-size", "8"]
    url = stack_env["LORAFORGE_CATALOG_URL"]

    process = subprocess.Popen(
        args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True
    )
    deadline = time.monotonic() + 300
    try:
        while time.monotonic() < deadline and process.poll() is None:
            if 8 <= len(caption_rows(url)) < 20:
                break
            time.sleep(0.1)
        assert process.poll() is None, "the run ended before it could be killed"
        os.killpg(process.pid, signal.SIGKILL)  # the whole job dies at once: CLI, Prefect server, Ray
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    survivors = caption_rows(url)
    assert 8 <= len(survivors) < 24

    rerun = subprocess.run([*args, "--json"], env=env, capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    summary = json.loads(rerun.stdout)
    assert summary["captioned"] == 24 - len(survivors) and summary["skipped"] == len(survivors)
    after = caption_rows(url)
    assert len(after) == 24 and len({row[1] for row in after}) == 24
    assert survivors <= after  # the same rows (ids, texts, timestamps): kept, not redone


def running_services() -> dict[str, str]:
    """The test's Prefect server and Ray cluster, so the CLI under test skips starting its own."""
    import ray
    from prefect.settings import get_current_settings

    return {
        "LORAFORGE_PREFECT_API_URL": str(get_current_settings().api.url),
        "LORAFORGE_RAY_ADDRESS": ray.get_runtime_context().gcs_address,
    }


def caption_rows(url: str) -> set[tuple[str, str, str, str]]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(select(Caption.id, Caption.image_id, Caption.text, Caption.created_at)).all()
    finally:
        engine.dispose()
    return {(row[0], row[1], row[2], row[3].isoformat()) for row in rows}
