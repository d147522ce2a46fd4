"""The caption flow on Postgres + S3 with Ray's actor pool and Prefect; a killed CLI run resumes."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from sqlalchemy import select

from loraforge.catalog.models import Caption, Image, Task
from loraforge.errors import ModelError
from loraforge.stages.context import open_context
from tests.support import runs
from tests.support.images import jpeg_bytes, real_photo_paths
from tests.support.tiny_models import build_tiny_blip

pytestmark = pytest.mark.usefixtures("prefect_harness", "ray_cluster")

TRIGGER = "ohwx woman"


def ingest_folder(folder: Path) -> None:

    summary = runs.ingest("alice", sources=[str(folder)])
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

    summary = runs.caption(
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

    again = runs.caption("alice", captioner="blip", model=str(model), batch_size=2)
    assert (again["captioned"], again["skipped"]) == (0, 5)
    assert active_captions() == captions

    # A model that is not there fails the run at once, before Ray work, and loses nothing.
    with pytest.raises(ModelError, match="does not exist"):
        runs.caption("alice", captioner="blip", model=str(tmp_path / "missing"), variant="other")
    with open_context().catalog.session() as session:
        failed = session.scalars(select(Task).where(Task.status == "FAILED")).one()
        assert "does not exist" in (failed.error or "")
    assert active_captions() == captions
