"""Curation with reference faces, inline on the embedded catalog: other people are rejected with their score
and face box, the person passes, and a picture of two people is cropped around the person."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from loraforge.catalog import queries
from loraforge.catalog.models import Dataset, Derivative, ImageMetadata
from loraforge.errors import InvalidInput
from loraforge.models.identity import DLIB_MODEL
from loraforge.sources.staging import stage_sources
from loraforge.stages.bucket import BucketConfig, BucketStage, record_bucket, select_bucket_work
from loraforge.stages.context import Context, open_context
from loraforge.stages.curate import (
    CurateStage,
    curate_dataset,
    curate_options,
    record_features,
    select_curate_work,
)
from loraforge.stages.curate_decide import decide_curation
from loraforge.stages.curate_identity import (
    FACE_EMBEDDINGS_KEY,
    IDENTITY_KEY,
    clear_references,
    default_embedder,
    identity_config,
    reference_faces,
    save_references,
)
from loraforge.stages.ingest import IngestStage, record_ingest
from loraforge.stages.report import dataset_report
from loraforge.stages.runner import run_inline
from tests.identity.photos import AUGMENTATIONS, portrait, two_people
from tests.support.images import encode, real_photo

MAX_PIXELS = 80_000_000


def write_photos(folder: Path) -> tuple[Path, int]:
    """Grace Hopper three times, the astronaut, both side by side, a cat; and where the right one starts."""
    folder.mkdir(parents=True)
    hopper = portrait("grace_hopper")
    for name in ("flip", "brighter", "rotate_-8"):
        (folder / f"hopper_{name}.jpg").write_bytes(encode(AUGMENTATIONS[name](hopper), "JPEG", quality=90))
    (folder / "astronaut.jpg").write_bytes(encode(portrait("astronaut"), "JPEG", quality=90))
    pair, right_starts = two_people("astronaut", "grace_hopper")
    (folder / "pair.jpg").write_bytes(encode(pair, "JPEG", quality=90))
    (folder / "cat.jpg").write_bytes(encode(real_photo("chelsea"), "JPEG", quality=90))
    return folder, right_starts


def ingest(ctx: Context, folder: Path) -> str:
    items = stage_sources([str(folder)], ctx.source_limits, ctx.store, dataset_id="test", batch="b")
    stage = IngestStage(store_config=ctx.store_config, limits=ctx.source_limits, max_pixels=MAX_PIXELS)
    results = run_inline(stage, items)
    with ctx.catalog.session() as session:
        dataset = queries.get_or_create_dataset(session, "hopper", target_model="sd15")
        record_ingest(session, results, dataset_id=dataset.id)
        return dataset.id


def curate(ctx: Context, dataset_id: str) -> dict[str, Any]:
    """What the curate flow does, inline."""
    with ctx.catalog.session() as session:
        items, _ = select_curate_work(session, dataset_id)
    results = run_inline(CurateStage(store_config=ctx.store_config, max_pixels=MAX_PIXELS), items)
    with ctx.catalog.session() as session:
        record_features(session, results)
        dataset = session.get(Dataset, dataset_id)
        assert dataset is not None
        config = curate_options(dataset)
        return decide_curation(session, dataset_id, config, store=ctx.store, max_pixels=MAX_PIXELS).to_dict()


def report(ctx: Context, dataset_id: str) -> dict[str, dict[str, Any]]:
    with ctx.catalog.session() as session:
        dataset = session.get(Dataset, dataset_id)
        assert dataset is not None
        rows = {image["filename"]: image for image in dataset_report(session, dataset)["images"]}
        identity = dict(
            session.execute(
                select(ImageMetadata.image_id, ImageMetadata.value).where(ImageMetadata.key == IDENTITY_KEY)
            ).all()
        )
    for row in rows.values():
        row["identity"] = identity.get(row["id"])
    return rows


def set_references(ctx: Context, dataset_id: str, *files: Path, max_distance: float | None = None) -> None:
    pictures = [(path.name, path.read_bytes()) for path in files]
    embedder = default_embedder()
    references = reference_faces(pictures, embedder, max_pixels=MAX_PIXELS)
    with ctx.catalog.session() as session:
        dataset = session.get(Dataset, dataset_id)
        assert dataset is not None
        save_references(dataset, references, model=embedder.model, max_distance=max_distance)


@pytest.fixture
def ctx(embedded_env: Path) -> Context:
    return open_context()


def test_other_people_are_rejected_with_score_and_box(ctx: Context, tmp_path: Path) -> None:
    folder, right_starts = write_photos(tmp_path / "photos")
    dataset_id = ingest(ctx, folder)
    reference = tmp_path / "ref.jpg"
    reference.write_bytes(encode(portrait("grace_hopper"), "JPEG", quality=92))
    set_references(ctx, dataset_id, reference)

    summary = curate(ctx, dataset_id)
    rows = report(ctx, dataset_id)

    assert summary["faces_scored"] == 5 and summary["rejected"] == {"other_person": 1}
    astronaut = rows["astronaut.jpg"]
    assert astronaut["status"] == "rejected" and astronaut["issues"] == ["other_person"]
    assert astronaut["status_reason"].startswith("other_person (score 0.6") or astronaut[
        "status_reason"
    ].startswith("other_person (score 0.7")
    assert astronaut["scores"]["other_person"] > 0.6
    assert astronaut["identity"]["matched"] is False and astronaut["identity"]["model"] == DLIB_MODEL
    x0, y0, x1, y1 = astronaut["identity"]["box"]
    assert 0 <= x0 < x1 <= astronaut["width"] and 0 <= y0 < y1 <= astronaut["height"]

    for name in ("hopper_flip.jpg", "hopper_brighter.jpg", "hopper_rotate_-8.jpg"):
        row = rows[name]
        # Copies of one photo may be grouped as near duplicates; none is someone else.
        assert row["status"] in ("kept", "duplicate"), (name, row["status_reason"])
        assert "other_person" not in row["issues"] and row["scores"]["other_person"] < 0.4
        assert row["identity"]["matched"] is True and row["identity"]["similarity"] > 0.6

    pair = rows["pair.jpg"]
    assert pair["status"] == "kept" and pair["identity"]["faces"] == 2
    assert pair["identity"]["box"][0] >= right_starts  # Grace Hopper's face, not the astronaut's

    cat = rows["cat.jpg"]
    assert "other_person" not in cat["scores"] and cat["identity"] == {"model": DLIB_MODEL, "faces": 0}


def test_a_new_threshold_compares_again_without_new_vectors(ctx: Context, tmp_path: Path) -> None:
    folder, _ = write_photos(tmp_path / "photos")
    dataset_id = ingest(ctx, folder)
    reference = tmp_path / "ref.jpg"
    reference.write_bytes(encode(portrait("grace_hopper"), "JPEG", quality=92))
    set_references(ctx, dataset_id, reference)
    curate(ctx, dataset_id)
    with ctx.catalog.session() as session:
        first = dict(
            session.execute(
                select(ImageMetadata.image_id, ImageMetadata.value).where(
                    ImageMetadata.key == FACE_EMBEDDINGS_KEY
                )
            ).all()
        )
    assert len(first) == 6

    assert report(ctx, dataset_id)["astronaut.jpg"]["status"] == "rejected"
    # Looser than dlib's 0.6: the astronaut (about 0.7 from Grace Hopper) now passes as her.
    set_references(ctx, dataset_id, reference, max_distance=0.8)
    with ctx.catalog.session() as session:
        dataset = session.get(Dataset, dataset_id)
        assert dataset is not None
        config = curate_options(dataset)
        assert config.identity is not None and config.identity.max_distance == 0.8
        # No store and no model: every picture's vectors come from the catalog.
        summary = curate_dataset(session, dataset, config, faces=_cached_faces_only(session))
    assert "other_person" not in summary.rejected and summary.faces_scored == 5
    astronaut = report(ctx, dataset_id)["astronaut.jpg"]
    assert astronaut["status"] == "kept" and astronaut["identity"]["matched"] is True


def _cached_faces_only(session: Any) -> Any:
    from loraforge.stages.curate_identity import face_embeddings

    def faces(images: Any) -> Any:
        def no_model() -> Any:
            raise AssertionError("vectors should come from the catalog")

        return face_embeddings(
            session, None, images, model=DLIB_MODEL, embedder=no_model, max_pixels=MAX_PIXELS
        )

    return faces


def test_clearing_the_references_turns_the_filter_off(ctx: Context, tmp_path: Path) -> None:
    folder, _ = write_photos(tmp_path / "photos")
    dataset_id = ingest(ctx, folder)
    reference = tmp_path / "ref.jpg"
    reference.write_bytes(encode(portrait("grace_hopper"), "JPEG", quality=92))
    set_references(ctx, dataset_id, reference)
    curate(ctx, dataset_id)
    with ctx.catalog.session() as session:
        dataset = session.get(Dataset, dataset_id)
        assert dataset is not None
        clear_references(dataset)
    with ctx.catalog.session() as session:
        dataset = session.get(Dataset, dataset_id)
        assert dataset is not None and identity_config(dataset) is None
    summary = curate(ctx, dataset_id)
    assert "other_person" not in summary["rejected"] and summary["faces_scored"] == 0
    assert report(ctx, dataset_id)["astronaut.jpg"]["status"] == "kept"


def test_a_reference_without_a_face_is_refused(tmp_path: Path, embedded_env: Path) -> None:
    with pytest.raises(InvalidInput, match="cat.jpg: no face found"):
        reference_faces(
            [("cat.jpg", encode(real_photo("chelsea"), "JPEG"))], default_embedder(), max_pixels=MAX_PIXELS
        )
    with pytest.raises(InvalidInput, match="notes.txt"):
        reference_faces([("notes.txt", b"not a picture")], default_embedder(), max_pixels=MAX_PIXELS)


def test_the_crop_keeps_the_matching_face(ctx: Context, tmp_path: Path) -> None:
    folder, right_starts = write_photos(tmp_path / "photos")
    dataset_id = ingest(ctx, folder)
    reference = tmp_path / "ref.jpg"
    reference.write_bytes(encode(portrait("grace_hopper"), "JPEG", quality=92))
    set_references(ctx, dataset_id, reference)
    curate(ctx, dataset_id)

    # A square bucket on a 741x400 picture: both faces cannot fit, so the crop must choose one.
    stage = BucketStage(
        store_config=ctx.store_config,
        max_pixels=MAX_PIXELS,
        dataset_id=dataset_id,
        options=BucketConfig(target="sd15", buckets="512x512"),
    )
    with ctx.catalog.session() as session:
        items, _ = select_bucket_work(session, dataset_id, stage.params_hash)
    pair_items = [item for item in items if item["filename"] == "pair.jpg"]
    assert pair_items and pair_items[0]["identity_box"][0] >= right_starts
    results = run_inline(stage, pair_items)
    assert results[0]["error"] is None, results[0]["error"]
    x0, _, x1, _ = results[0]["box"]
    assert x0 >= right_starts - 60 and results[0]["crop_reason"].startswith("keeps the face")
    assert len(results[0]["faces"]) == 2  # both are still recorded as faces
    with ctx.catalog.session() as session:
        record_bucket(session, stage, results)


def test_a_crop_made_before_the_references_is_made_again_for_the_person(ctx: Context, tmp_path: Path) -> None:
    folder, right_starts = write_photos(tmp_path / "photos")
    dataset_id = ingest(ctx, folder)
    curate(ctx, dataset_id)  # no references yet
    stage = BucketStage(
        store_config=ctx.store_config,
        max_pixels=MAX_PIXELS,
        dataset_id=dataset_id,
        options=BucketConfig(target="sd15", buckets="512x512"),
    )

    def bucket() -> dict[str, dict[str, Any]]:
        """What the bucket flow does, inline: the work it selects, cropped and recorded, by file name."""
        with ctx.catalog.session() as session:
            items, _ = select_bucket_work(session, dataset_id, stage.params_hash)
        results = run_inline(stage, items)
        assert all(result["error"] is None for result in results)
        with ctx.catalog.session() as session:
            record_bucket(session, stage, results)
        return {result["filename"]: result for result in results}

    first = bucket()
    assert first["pair.jpg"]["identity_box"] is None and len(first["pair.jpg"]["faces"]) == 2
    assert bucket() == {}  # nothing changed: nothing to do
    # The references name the person the first crop left out.
    kept_right = first["pair.jpg"]["box"][0] >= right_starts - 60
    person = "astronaut" if kept_right else "grace_hopper"
    reference = tmp_path / "ref.jpg"
    reference.write_bytes(encode(portrait(person), "JPEG", quality=92))
    set_references(ctx, dataset_id, reference)
    curate(ctx, dataset_id)

    again = bucket()
    # Only the picture of several people is cropped again; one face crops the same whoever it is.
    assert set(again) == {"pair.jpg"}
    x0, _, x1, _ = again["pair.jpg"]["box"]
    assert (x1 <= right_starts + 60) if kept_right else (x0 >= right_starts - 60)
    with ctx.catalog.session() as session:
        (row,) = session.scalars(
            select(Derivative).where(Derivative.image_id == again["pair.jpg"]["image_id"])
        ).all()
        assert row.box == again["pair.jpg"]["box"]  # the row took the new crop, no second row
    assert bucket() == {}
