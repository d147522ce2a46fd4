"""Bucket and export real photos from 1:4 to 4:1 inline on the embedded catalog, as the flows do.

Shared by tests/unit/stages/test_export_fixed_points.py and bench/trainer_buckets.py.
"""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

from PIL import Image as PILImage

from loraforge.catalog import queries
from loraforge.catalog.models import Caption, Dataset, Image
from loraforge.stages.bucket import BucketConfig, BucketStage, make_current, record_bucket, select_bucket_work
from loraforge.stages.context import Context
from loraforge.stages.export import ExportOutcome, ExportRequest, plan_export, write_export
from loraforge.stages.runner import run_inline
from loraforge.storage.keys import original_key
from tests.support.aspect_photos import aspect_photos

IMAGE_SUFFIXES = (".jpg", ".png")


def add_dataset(ctx: Context, model: str) -> str:
    with ctx.catalog.session() as session:
        dataset = queries.get_or_create_dataset(
            session, f"set-{model}", trigger_word="ohwx", class_word="person", target_model=model
        )
        dataset_id = dataset.id
        for filename, data in aspect_photos().items():
            sha = hashlib.sha256(data).hexdigest()
            ctx.store.put(original_key(sha), data)
            width, height = PILImage.open(io.BytesIO(data)).size
            image = Image(
                dataset_id=dataset_id, sha256=sha, object_key=original_key(sha), original_filename=filename,
                source_kind="file", source_uri=filename, width=width, height=height, format="jpeg",
                bytes=len(data), status="kept",
            )  # fmt: skip
            session.add(image)
            session.flush()
            session.add(
                Caption(image_id=image.id, variant="manual", text=f"ohwx person, {filename}", is_active=True)
            )
    return dataset_id


def bucket(ctx: Context, dataset_id: str, config: BucketConfig) -> tuple[BucketStage, int]:
    """The bucket run as the flow does it, inline: select, process, record, make current."""
    stage = BucketStage(
        store_config=ctx.store_config, max_pixels=80_000_000, dataset_id=dataset_id, options=config
    )
    with ctx.catalog.session() as session:
        items, _ = select_bucket_work(session, dataset_id, stage.params_hash)
    results = run_inline(stage, items)
    assert all(result["error"] is None for result in results), results
    with ctx.catalog.session() as session:
        record_bucket(session, stage, results)
        dataset = session.get(Dataset, dataset_id)
        assert dataset is not None
        make_current(session, dataset, stage, batch_size=1)
    return stage, len(items)


def export(ctx: Context, dataset_id: str, fmt: str, out: Path | None) -> ExportOutcome:
    with ctx.catalog.session() as session:
        dataset = session.get(Dataset, dataset_id)
        assert dataset is not None
        plan = plan_export(session, dataset, ExportRequest(fmt), ctx.store)
    return write_export(ctx, plan, out_dir=out)


def exported_sizes(folder: Path) -> list[tuple[int, int]]:
    sizes = []
    for path in sorted(folder.rglob("*")):
        if path.suffix in IMAGE_SUFFIXES:
            with PILImage.open(path) as image:
                sizes.append(image.size)
    return sizes
