"""The maintenance flows on Postgres + the S3 server: integrity check with orphan collection, source sync."""

from __future__ import annotations

import random
import shutil
from pathlib import Path

import pytest
from sqlalchemy import select

from loraforge import maintenance
from loraforge.catalog.models import Image
from loraforge.stages.context import open_context
from tests.support import runs
from tests.support.images import real_photo_paths

pytestmark = pytest.mark.usefixtures("prefect_harness")


def _photos(folder: Path, names: tuple[str, ...]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        shutil.copy(real_photo_paths()[name], folder / real_photo_paths()[name].name)
    return folder


def _check(**overrides: object) -> maintenance.IntegrityReport:
    ctx = open_context()
    options: dict[str, object] = {"sample": 100, "grace_s": 0.0, "dry_run": True, "rng": random.Random(0)}
    with ctx.catalog.session() as session:
        return maintenance.check_integrity(session, ctx.store, **(options | overrides))  # type: ignore[arg-type]


def test_integrity_check_finds_missing_and_corrupt_objects_and_collects_orphans(
    stack_env: dict[str, str], tmp_path: Path
) -> None:
    from flows.maintenance import check_integrity_flow

    runs.ingest("alice", sources=[str(_photos(tmp_path / "photos", ("astronaut", "coffee", "chelsea")))])
    ctx = open_context()
    store = ctx.store
    with ctx.catalog.session() as session:
        images = session.scalars(select(Image).order_by(Image.original_filename)).all()
        dataset_id = images[0].dataset_id
    clean = _check()
    assert clean.ok and clean.orphans == [] and clean.young_orphans == 0
    assert clean.hashed == len(images) == 3 and clean.rows_checked >= 3

    gone_dataset = "0" * 32
    orphans = [
        f"derived/{dataset_id}/no-such-image/crop-abc.webp",
        "originals/ff/" + "f" * 64,
        f"uploads/{gone_dataset}/batch/000000/left-behind.jpg",
    ]
    kept = [f"uploads/{dataset_id}/waiting/000000/queued.jpg", "not-ours/notes.txt"]
    for key in orphans + kept:
        store.put(key, b"bytes")

    young = _check(grace_s=3600.0)
    assert young.orphans == [] and young.young_orphans == len(orphans)
    dry = _check()
    assert dry.orphans == sorted(orphans) and dry.removed == []
    assert all(store.exists(key) for key in orphans)

    # Damage two rows' objects: one original's bytes change, one thumbnail disappears.
    corrupted, thumbless = images[0], images[1]
    store.put(corrupted.object_key, b"not the picture any more")
    assert thumbless.thumbnail_key
    store.delete(thumbless.thumbnail_key)
    damaged = _check()
    assert [c["id"] for c in damaged.corrupt] == [corrupted.id]
    assert {"kind": "thumbnail", "id": thumbless.id, "key": thumbless.thumbnail_key} in damaged.missing
    assert not damaged.ok

    # The scheduled flow removes the old orphans, then fails naming what is damaged.
    with pytest.raises(maintenance.IntegrityProblems, match=rf"missing: thumbnail {thumbless.id}"):
        check_integrity_flow(grace_s=0.0)
    assert not any(store.exists(key) for key in orphans)
    assert all(store.exists(key) for key in kept)


def test_sync_sources_reingests_watched_folders(stack_env: dict[str, str], tmp_path: Path) -> None:
    from flows.maintenance import sync_sources_flow
    from loraforge.stages.datasets import find_dataset

    folder = _photos(tmp_path / "watched", ("astronaut", "coffee"))
    dataset_id = runs.dataset_id("watcher", create=True)
    runs.dataset_id("unwatched", create=True)
    ctx = open_context()
    with ctx.catalog.session() as session:
        assert maintenance.watch(find_dataset(session, "watcher"), [folder]) == [str(folder.resolve())]
    with pytest.raises(Exception, match="not a folder"), ctx.catalog.session() as session:
        maintenance.watch(find_dataset(session, "watcher"), [tmp_path / "missing"])

    first = sync_sources_flow()
    assert first["synced"] == {dataset_id: {"found": 2, "added": 2, "failed": 0}}

    _photos(folder, ("chelsea",))
    second = sync_sources_flow()
    assert second["synced"] == {dataset_id: {"found": 3, "added": 1, "failed": 0}}

    with ctx.catalog.session() as session:
        maintenance.unwatch(find_dataset(session, "watcher"), [folder])
    assert sync_sources_flow()["synced"] == {}


def test_trained_weights_are_checked_but_never_swept(stack_env: dict[str, str]) -> None:
    from loraforge.catalog.models import Export, Training
    from loraforge.storage.keys import training_weights_key

    dataset_id = runs.dataset_id("trained", create=True)
    ctx = open_context()
    with ctx.catalog.session() as session:
        export = Export(dataset_id=dataset_id, format="replicate", status="COMPLETED")
        session.add(export)
        session.flush()
        training = Training(dataset_id=dataset_id, export_id=export.id, status="SUCCEEDED")
        session.add(training)
        session.flush()
        training.weights_key = training_weights_key(dataset_id, training.id, "trained_model.tar")
        weights_key = training.weights_key
    missing = _check()
    assert {"kind": "weights", "id": training.id, "key": weights_key} in missing.missing

    ctx.store.put(weights_key, b"weights")
    ctx.store.put("trainings/no-dataset/no-training/left.tar", b"old weights")  # no row names it
    present = _check(dry_run=False)
    assert present.ok and present.removed == []
    assert ctx.store.exists("trainings/no-dataset/no-training/left.tar")
