"""The train flow and the training sync on Postgres + S3 + Prefect, against a fake Replicate HTTP server.

The fake is a real server on loopback speaking Replicate's API; the official `replicate` client reaches it
through REPLICATE_BASE_URL, as it would reach api.replicate.com.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import select, text

from loraforge.catalog.models import Export, Task, Training
from loraforge.errors import Conflict, InvalidInput, NotFound
from loraforge.stages.context import Context, open_context
from loraforge.training import service
from loraforge.training.options import TrainOptions
from tests.api.factories import make_caption, make_dataset, make_image, make_workspace
from tests.support.fake_replicate import (
    FAILURE,
    TRAINER,
    TRAINER_VERSION,
    WEIGHTS,
    FakeReplicate,
    running_fake_replicate,
)

pytestmark = pytest.mark.usefixtures("prefect_harness")
DESTINATION = "alice-owner/alice-lora"


@pytest.fixture
def replicate(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeReplicate]:
    """A fake Replicate the official client talks to, through the client's own variables."""
    with running_fake_replicate() as fake:
        monkeypatch.setenv("REPLICATE_API_TOKEN", fake.token)
        monkeypatch.setenv("REPLICATE_BASE_URL", fake.base_url)
        yield fake


@pytest.fixture
def ctx(stack_env: dict[str, str]) -> Context:
    context = open_context()
    context.catalog.ensure_schema()
    return context


def seed_dataset(ctx: Context, name: str = "alice", pictures: int = 3) -> str:
    """A dataset with a trigger word and captioned pictures, in the catalog and the store."""
    with ctx.catalog.session() as session:
        dataset = make_dataset(session, make_workspace(session, "default"), name, trigger_word="ohwx")
        dataset.target_model = "flux"
        for seed in range(pictures):
            image = make_image(session, ctx.store, dataset, seed=seed)
            make_caption(session, image, f"ohwx woman, picture {seed}")
        return dataset.id


def train(dataset_id: str, **options: Any) -> dict[str, Any]:
    from flows.train import train_flow

    return train_flow(dataset_id, TrainOptions(**{"destination": DESTINATION, **options}))


def row(ctx: Context, training_id: str) -> Training:
    with ctx.catalog.session() as session:
        found = session.get(Training, training_id)
        assert found is not None
        return found


def sync_until_settled(ctx: Context, training_id: str) -> list[str]:
    """Run the scheduled sync flow until the training is finished; returns the statuses it went through."""
    from flows.maintenance import sync_trainings_flow

    statuses = []
    for _ in range(10):  # the bound only stops a hung test
        result = sync_trainings_flow()
        assert not result["failed"], result
        statuses.append(row(ctx, training_id).status)
        if training_id not in result["checked"]:
            break
    return statuses


def test_train_uploads_the_export_starts_the_training_and_the_sync_stores_the_weights(
    ctx: Context, replicate: FakeReplicate
) -> None:
    dataset_id = seed_dataset(ctx)
    # Replicate throttles the training's creation once: the client must wait and send it again.
    replicate.throttle("POST", f"/v1/models/{TRAINER}/versions/", retry_after="1")
    started = time.monotonic()
    result = train(dataset_id, steps=500, inputs={"optimizer": "prodigy", "batch_size": "2"})
    assert time.monotonic() - started >= 1.0
    assert [seen.status for seen in replicate.requests_to("POST", f"/v1/models/{TRAINER}/versions/")] == [
        429,
        201,
    ]

    training = row(ctx, result["training_id"])
    assert (training.status, result["status"]) == ("STARTING", "STARTING")
    assert training.trainer_version == f"{TRAINER}:{TRAINER_VERSION}"  # the latest, as Replicate reports it
    assert training.remote_id in replicate.trainings and training.destination == DESTINATION
    assert training.export_id == result["export_id"] and training.task_id == result["task_id"]
    sent = replicate.trainings[training.remote_id]["input"]
    assert sent["trigger_word"] == "ohwx" and sent["steps"] == 500
    assert (sent["optimizer"], sent["batch_size"]) == ("prodigy", 2)  # coerced to the schema's integer
    assert training.params == sent

    archive = replicate.uploaded_zip(sent["input_images"])
    names = sorted(archive.namelist())
    pictures = [name for name in names if not name.endswith(".txt")]
    assert len(pictures) == 3 and "/" not in "".join(names)
    for picture in pictures:
        caption = archive.read(picture.rsplit(".", 1)[0] + ".txt").decode()
        assert caption.startswith("ohwx woman")
    created = replicate.models[DESTINATION]
    assert created["visibility"] == "private"
    creates = [
        seen.status for seen in replicate.requests_to("POST", "/v1/models") if seen.path == "/v1/models"
    ]
    assert creates == [201]

    with ctx.catalog.session() as session:
        task = session.get(Task, result["task_id"])
        assert task is not None and (task.kind, task.status) == ("train", "COMPLETED")
        children = session.scalars(select(Task).where(Task.parent_id == task.id)).all()
        assert [(child.kind, child.status) for child in children] == [("export", "COMPLETED")]
        export = session.get(Export, result["export_id"])
        assert export is not None and export.format == "replicate"

    assert sync_until_settled(ctx, training.id) == ["PROCESSING", "PROCESSING", "SUCCEEDED", "SUCCEEDED"]
    done = row(ctx, training.id)
    assert done.output_version == replicate.trainings[training.remote_id]["output"]["version"]
    assert done.output_version and done.output_version.startswith(f"{DESTINATION}:")
    assert done.weights_url and done.weights_key == f"trainings/{dataset_id}/{training.id}/trained_model.tar"
    assert ctx.store.get(done.weights_key) == WEIGHTS
    assert replicate.weights_requests == [None]  # the delivery URL is fetched without our token
    assert "pushing version" in (done.logs_tail or "") and done.error is None


def test_wrong_inputs_are_refused_before_anything_is_exported_or_uploaded(
    ctx: Context, replicate: FakeReplicate
) -> None:
    dataset_id = seed_dataset(ctx)
    with pytest.raises(InvalidInput) as refused:
        train(dataset_id, steps=9000, inputs={"optimiser": "adamw", "learning_rate": "fast"})
    message = str(refused.value)
    assert "steps: must be at most 6000" in message
    assert "learning_rate: must be a number" in message
    assert "unknown input optimiser" in message and "optimizer" in message  # the inputs it takes
    with pytest.raises(InvalidInput, match="optimizer: must be one of 'adamw8bit', 'adamw', 'prodigy'"):
        train(dataset_id, inputs={"optimizer": "sgd"})
    with pytest.raises(InvalidInput, match="hf_token: a secret input"):
        train(dataset_id, inputs={"hf_token": "hf_secret_value"})
    assert not replicate.requests_to("POST", "/v1/")
    with ctx.catalog.session() as session:
        assert not session.scalars(select(Training)).all()
        assert not session.scalars(select(Export)).all()
        failed = session.scalars(select(Task).where(Task.kind == "train")).all()
        assert [task.status for task in failed] == ["FAILED"] * 3


def test_a_failed_upload_leaves_no_row_claiming_a_training(ctx: Context, replicate: FakeReplicate) -> None:
    dataset_id = seed_dataset(ctx)
    replicate.fail("POST", "/v1/files", status=413)
    with pytest.raises(InvalidInput, match="uploading the dataset to Replicate: Replicate answered 413"):
        train(dataset_id)
    assert not replicate.trainings
    with ctx.catalog.session() as session:
        assert not session.scalars(select(Training)).all()
        task = session.scalars(select(Task).where(Task.kind == "train")).one()
        assert task.status == "FAILED" and "413" in (task.error or "")


def test_a_missing_destination_is_reported_and_records_nothing(
    ctx: Context, replicate: FakeReplicate
) -> None:
    dataset_id = seed_dataset(ctx)
    # The destination vanishes between our check and the training's creation: Replicate's 404 problem+json.
    replicate.fail("POST", f"/v1/models/{TRAINER}/versions/", status=404)
    with pytest.raises(NotFound, match="starting the training on .*Replicate answered 404"):
        train(dataset_id)
    with ctx.catalog.session() as session:
        assert not session.scalars(select(Training)).all()


def test_an_existing_destination_is_used_and_a_create_race_is_fine(
    ctx: Context, replicate: FakeReplicate
) -> None:
    dataset_id = seed_dataset(ctx)
    replicate.add_model(DESTINATION, visibility="public")
    # The first look says 404 while the model exists: the create answers 409, which means "it exists".
    replicate.fail("GET", f"/v1/models/{DESTINATION}", status=404)
    result = train(dataset_id)
    creates = [
        seen.status for seen in replicate.requests_to("POST", "/v1/models") if seen.path == "/v1/models"
    ]
    assert creates == [409]
    assert replicate.models[DESTINATION]["visibility"] == "public"  # left as it was
    assert row(ctx, result["training_id"]).status == "STARTING"


def test_training_again_while_one_is_active_says_so(ctx: Context, replicate: FakeReplicate) -> None:
    dataset_id = seed_dataset(ctx)
    replicate.advance_on_get = False
    first = train(dataset_id)
    with pytest.raises(Conflict, match=f"already starting \\(training {first['training_id']}"):
        train(dataset_id)
    assert len(replicate.trainings) == 1 and len(replicate.files) == 1
    other = train(dataset_id, destination="alice-owner/alice-lora-v2")  # another destination is another job
    assert other["training_id"] != first["training_id"] and len(replicate.trainings) == 2


def test_failed_and_cancelled_trainings_keep_their_logs_and_error(
    ctx: Context, replicate: FakeReplicate
) -> None:
    dataset_id = seed_dataset(ctx)
    replicate.outcome = "failed"
    failed = train(dataset_id)
    assert sync_until_settled(ctx, failed["training_id"])[-1] == "FAILED"
    kept = row(ctx, failed["training_id"])
    assert (
        kept.error == FAILURE
        and "Traceback" in (kept.logs_tail or "")
        and "100/1000" in (kept.logs_tail or "")
    )
    assert kept.weights_key is None and kept.output_version is None

    replicate.advance_on_get = False
    running = train(dataset_id, destination="alice-owner/second")
    replicate.advance(running["remote_id"])  # processing, with a first log line
    service.sync_training(ctx, running["training_id"])
    cancelled = service.cancel_training(ctx, running["training_id"])
    assert cancelled["status"] == "CANCELED"
    assert "100/1000" in cancelled["logs_tail"] and "canceled by user" in cancelled["logs_tail"]
    with pytest.raises(Conflict, match="already finished"):
        service.cancel_training(ctx, running["training_id"])
    # A late report that the training was still running does not reopen it.
    late = dict(replicate.public(replicate.trainings[running["remote_id"]]), status="processing", logs="")
    service.apply_webhook(ctx, late)
    assert row(ctx, running["training_id"]).status == "CANCELED"
    assert "canceled by user" in (row(ctx, running["training_id"]).logs_tail or "")


def test_the_token_is_never_logged_stored_or_returned(
    ctx: Context, replicate: FakeReplicate, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    dataset_id = seed_dataset(ctx)
    replicate.throttle("POST", "/v1/files", retry_after="0")
    result = train(dataset_id)
    sync_until_settled(ctx, result["training_id"])
    service.cancel_training(ctx, train(dataset_id, destination="alice-owner/x")["training_id"])
    replicate.fail("GET", "/v1/trainings/", status=401)  # a refused token: the message names the variable
    third = train(dataset_id, destination="alice-owner/y")
    with pytest.raises(Exception, match="REPLICATE_API_TOKEN") as refused:
        service.sync_training(ctx, third["training_id"])
    assert replicate.token not in str(refused.value)
    assert all(
        seen.authorization == f"Bearer {replicate.token}" for seen in replicate.requests_to("GET", "/v1/")
    )

    dumped = []
    with ctx.catalog.engine.connect() as conn:
        for table in ("tasks", "trainings", "exports", "datasets"):
            dumped += [json.dumps(list(r), default=str) for r in conn.execute(text(f"SELECT * FROM {table}"))]
    everything = "\n".join(dumped)
    assert result["remote_id"] in everything and "canceled by user" in everything  # the dump holds the rows
    assert replicate.token not in everything
    assert "HTTP Request: POST" in caplog.text  # the client's requests were logged, without their headers
    assert replicate.token not in caplog.text
