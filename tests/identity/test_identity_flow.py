"""The curate flow with reference faces on the whole stack (Prefect, Ray, S3): the face vectors are found by
a sharded pass on the Ray workers, so the decide step in the driver only compares."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from loraforge.catalog.models import Dataset, ImageMetadata, Task
from loraforge.config import get_settings
from loraforge.models.identity import DLIB_MODEL
from loraforge.stages import curate_decide
from loraforge.stages.context import open_context, reset_contexts
from loraforge.stages.curate_identity import (
    FACE_EMBEDDINGS_KEY,
    default_embedder,
    reference_faces,
    save_references,
)
from tests.identity.photos import portrait
from tests.identity.test_identity_curate import MAX_PIXELS, write_photos
from tests.support import runs
from tests.support.images import encode

pytestmark = pytest.mark.usefixtures("prefect_harness", "ray_cluster")


def test_face_vectors_are_found_on_the_workers(
    stack_env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LORAFORGE_EXECUTOR", "ray")
    get_settings.cache_clear()
    reset_contexts()
    folder, _ = write_photos(tmp_path / "photos")
    assert runs.ingest("hopper", sources=[str(folder)])["added"] == 6
    ctx = open_context()
    embedder = default_embedder()
    pictures = [("ref.jpg", encode(portrait("grace_hopper"), "JPEG", quality=92))]
    references = reference_faces(pictures, embedder, max_pixels=MAX_PIXELS)
    with ctx.catalog.session() as session:
        dataset = session.scalars(select(Dataset).where(Dataset.name == "hopper")).one()
        save_references(dataset, references, model=embedder.model)

    def no_driver_model() -> Any:
        raise AssertionError("the decide step should find every vector in the catalog")

    monkeypatch.setattr(curate_decide, "default_embedder", no_driver_model)
    summary = runs.curate("hopper")

    assert summary["rejected"]["other_person"] == 1 and summary["faces_scored"] == 5
    with ctx.catalog.session() as session:
        vectors = session.scalars(select(ImageMetadata.value).where(ImageMetadata.key == FACE_EMBEDDINGS_KEY))
        assert sorted(len(v["faces"]) for v in vectors if v["model"] == DLIB_MODEL) == [0, 1, 1, 1, 1, 2]
        task = session.get(Task, summary["task_id"])
        assert task is not None and task.total == task.done == 12  # 6 measured, then 6 with faces looked for
    assert "curate-face-embed-shard" in shard_task_names(summary["task_id"])

    again = runs.curate("hopper")  # nothing left to find: no second pass
    assert again["faces_scored"] == 5 and "curate-face-embed-shard" not in shard_task_names(again["task_id"])


def shard_task_names(task_id: str) -> set[str]:
    """The names of the Prefect task runs of the curate run (each shard's name ends in -shard-<n>)."""
    return {run.name.rsplit("-", 1)[0] for run in runs.prefect_task_runs(task_id)}
