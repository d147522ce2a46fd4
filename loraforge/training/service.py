"""Training use-cases every client shares (the train flow, the CLI, the API and its webhook, the sync).

A training is started in this order, so that nothing is paid for or recorded before it can work:
check the inputs against the trainer's schema (`plan_training`), export and upload the dataset
(`upload_export`), create the destination and the training (`start_remote`), and only then write the row
(`record_training`). Afterwards `sync_training` brings the row up to date (polling, the scheduled sync and
`--wait` all use it; webhooks use `apply_webhook`) and copies the weights into the store once it succeeds.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import replicate

from loraforge.errors import Conflict, InvalidInput, NotFound
from loraforge.stages.context import Context
from loraforge.storage import ObjectStore
from loraforge.storage.keys import training_weights_key
from loraforge.training import provider, records
from loraforge.training.options import IMAGES_INPUT, TRIGGER_INPUT, TrainOptions, requested_inputs
from loraforge.training.provider import ProviderUnavailable, RemoteTraining, TrainerVersion

log = logging.getLogger(__name__)

MAX_POLL_FAILURES = 10
"""Consecutive failed polls after which `wait_for` gives up (the training itself goes on)."""


@dataclass(frozen=True)
class TrainingPlan:
    """A training checked against its trainer, before anything is uploaded."""

    trainer: TrainerVersion
    inputs: dict[str, Any]
    """Checked and coerced, without the images (their URL exists only after the upload)."""
    destination: str

    def final_inputs(self, images_url: str) -> dict[str, Any]:
        return {**self.inputs, IMAGES_INPUT: images_url}


def plan_training(
    client: replicate.Client, options: TrainOptions, *, trigger_word: str | None
) -> TrainingPlan:
    """Read the trainer's version (latest unless named) and check the inputs against its schema.

    The dataset's trigger word is sent as `trigger_word` when the trainer has that input and the user did
    not give one. InvalidInput lists every problem; nothing has been sent to Replicate but reads.
    """
    trainer = provider.read_trainer(client, options.trainer_model, options.trainer_version)
    if IMAGES_INPUT not in trainer.inputs.properties:
        raise InvalidInput(f"{trainer.model} has no {IMAGES_INPUT} input: it cannot train on a dataset zip")
    inputs = requested_inputs(options)
    if trigger_word and TRIGGER_INPUT in trainer.inputs.properties and TRIGGER_INPUT not in inputs:
        inputs[TRIGGER_INPUT] = trigger_word
    checked = trainer.inputs.check(inputs, supplied_later=[IMAGES_INPUT])
    return TrainingPlan(trainer, checked, options.destination)


def upload_export(client: replicate.Client, store: ObjectStore, object_key: str, filename: str) -> str:
    """Upload a stored export zip to Replicate; returns the URL the training input takes.

    The zip is streamed from the store into a local temporary file first: the upload body must be
    seekable so a throttled (429) upload can be sent again, and an S3 stream is not. It is opened by path
    because the client takes the basename of `file.name`, which a temporary file object lacks.
    """
    with tempfile.TemporaryDirectory(prefix="loraforge-upload-") as folder:
        local = Path(folder) / "dataset.zip"
        with store.open(object_key) as source, local.open("wb") as spool:
            shutil.copyfileobj(source, spool, 1024 * 1024)
        with local.open("rb") as body:
            return provider.upload_zip(client, body, filename)


def start_remote(
    client: replicate.Client, plan: TrainingPlan, images_url: str, *, webhook_url: str | None
) -> RemoteTraining:
    """Create the destination model if needed, then the training."""
    inputs = plan.trainer.inputs.check(plan.final_inputs(images_url))
    provider.ensure_model(client, plan.destination)
    return provider.create_training(client, plan.trainer, inputs, plan.destination, webhook_url)


def record_training(
    ctx: Context,
    client: replicate.Client,
    *,
    dataset_id: str,
    export_id: str,
    plan: TrainingPlan,
    images_url: str,
    remote: RemoteTraining,
    task_id: str | None,
) -> dict[str, Any]:
    """Write the row of a training Replicate accepted; returns it as the CLI prints it.

    Should the catalog refuse the row, the training is cancelled: Replicate would otherwise bill for a
    training nothing tracks.
    """
    try:
        with ctx.catalog.session() as session:
            row = records.record_started(
                session,
                dataset_id=dataset_id,
                export_id=export_id,
                destination=plan.destination,
                params=plan.final_inputs(images_url),
                remote=remote,
                task_id=task_id,
            )
            return records.as_dict(row)
    except BaseException:
        try:
            provider.cancel_training(client, remote.id)
            log.error("the training row could not be written; Replicate training %s was cancelled", remote.id)
        except Exception:  # noqa: BLE001 - the original failure is the one to report
            log.exception("no training row, and Replicate training %s could not be cancelled", remote.id)
        raise


def sync_training(
    ctx: Context, training_id: str, *, client: replicate.Client | None = None
) -> dict[str, Any]:
    """Poll Replicate for a training that may still change, update its row, and store its weights once
    it has succeeded. Returns the row as the CLI prints it."""
    with ctx.catalog.session() as session:
        row = records.get_training(session, training_id)
        remote_id, finished = row.remote_id, row.status in records.FINAL
    if remote_id and not finished:
        remote = provider.get_training(client or provider.replicate_client(), remote_id)
        with ctx.catalog.session() as session:
            records.apply_remote(records.get_training(session, training_id), remote)
    store_weights(ctx, training_id)
    with ctx.catalog.session() as session:
        return records.as_dict(records.get_training(session, training_id))


def store_weights(ctx: Context, training_id: str) -> str | None:
    """Copy a succeeded training's weights from Replicate into the store (once); returns their key."""
    with ctx.catalog.session() as session:
        row = records.get_training(session, training_id)
        if not records.needs_weights(row):
            return row.weights_key
        url, dataset_id = str(row.weights_url), row.dataset_id
    key = training_weights_key(dataset_id, training_id, Path(urlparse(url).path).name)
    with tempfile.TemporaryDirectory(prefix="loraforge-weights-") as folder:
        local = Path(folder) / "weights"
        size = provider.download_weights(url, local, timeout_s=ctx.settings.url_timeout_s)
        ctx.store.put_file(key, local, content_type="application/octet-stream")
    with ctx.catalog.session() as session:
        row = records.get_training(session, training_id)
        if row.weights_key is None:  # a webhook and a poll may both have fetched them; one key either way
            row.weights_key = key
    log.info("stored the weights of training %s (%d bytes) at %s", training_id, size, key)
    return key


def cancel_training(
    ctx: Context, training_id: str, *, client: replicate.Client | None = None
) -> dict[str, Any]:
    """Ask Replicate to cancel a running training and record what it answers; Conflict once finished."""
    with ctx.catalog.session() as session:
        row = records.get_training(session, training_id)
        if row.status in records.FINAL:
            raise Conflict(f"training {training_id} has already finished ({row.status.lower()})")
        remote_id = row.remote_id
    if not remote_id:
        raise NotFound(f"training {training_id} has no Replicate id to cancel")
    remote = provider.cancel_training(client or provider.replicate_client(), remote_id)
    with ctx.catalog.session() as session:
        row = records.get_training(session, training_id)
        records.apply_remote(row, remote)
        return records.as_dict(row)


def is_settled(training: dict[str, Any]) -> bool:
    """Finished, with nothing left to copy: a success has its weights stored (or no weights to store)."""
    if training["status"] not in records.FINAL:
        return False
    return training["status"] != records.TrainingStatus.SUCCEEDED or bool(
        training["weights_key"] or not training["weights_url"]
    )


def wait_for(
    ctx: Context,
    training_id: str,
    *,
    poll_interval_s: float,
    on_change: Callable[[dict[str, Any]], None] | None = None,
    client: replicate.Client | None = None,
) -> dict[str, Any]:
    """Poll until the training has finished and its weights are stored; returns the final row.

    A poll that fails for a passing reason (Replicate unreachable, 5xx) is retried at the next interval;
    after MAX_POLL_FAILURES in a row the error is raised. The training itself is never touched.
    """
    client = client or provider.replicate_client()
    last: tuple[str, int] | None = None
    failures = 0
    while True:
        try:
            current = sync_training(ctx, training_id, client=client)
            failures = 0
        except ProviderUnavailable as exc:
            failures += 1
            if failures >= MAX_POLL_FAILURES:
                raise
            log.warning("could not poll training %s (%s); trying again", training_id, exc)
            time.sleep(poll_interval_s)
            continue
        seen = (current["status"], len(current["logs_tail"] or ""))
        if on_change is not None and seen != last:
            on_change(current)
        last = seen
        if is_settled(current):
            return current
        time.sleep(poll_interval_s)


@dataclass(frozen=True)
class WebhookOutcome:
    training_id: str
    status: str
    needs_weights: bool


def apply_webhook(ctx: Context, payload: dict[str, Any]) -> WebhookOutcome:
    """Apply a (verified) webhook body, a training as Replicate describes it, to the row it concerns.

    Only a training the catalog already has is updated: NotFound otherwise, never a new row.
    """
    remote = RemoteTraining.from_json(payload)
    with ctx.catalog.session() as session:
        row = records.by_remote_id(session, remote.id)
        if row is None:
            raise NotFound(f"no training here has the Replicate id {remote.id}")
        records.apply_remote(row, remote)
        return WebhookOutcome(row.id, row.status, records.needs_weights(row))
