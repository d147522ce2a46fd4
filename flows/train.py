"""The `train` flow: a dataset export trained into a Flux LoRA on Replicate, recorded once Replicate took it.

The order keeps failures from losing anything or costing anything: inputs are checked against the
trainer's schema before the export and upload; the `trainings` row is written only once Replicate has
accepted the training, so a failed upload leaves no row claiming one. The flow returns as soon as the
training has started; `--wait`, the scheduled `sync-trainings` flow and Replicate's webhooks follow it from
there (the dataset is not held for the hour a training takes).
"""

from __future__ import annotations

from typing import Any

from prefect import flow, task
from prefect.cache_policies import NO_CACHE

from flows._common import LIFECYCLE_HOOKS, TrackedRun, tracked_run
from flows.export import export_flow
from flows.orchestration import run_flow
from loraforge.errors import InvalidInput
from loraforge.stages.datasets import get_dataset
from loraforge.stages.options import ExportOptions
from loraforge.training import provider, records, service
from loraforge.training.options import TrainOptions
from loraforge.training.provider import ProviderUnavailable
from loraforge.training.webhooks import webhook_url


def _retry_unavailable(_task: Any, _run: Any, state: Any) -> bool:
    # A refused upload (too large, bad token) fails the same way again; only a passing outage deserves one.
    return isinstance(state.data, ProviderUnavailable)


@task(
    name="train-upload",
    retries=2,
    retry_delay_seconds=5,
    retry_condition_fn=_retry_unavailable,
    cache_policy=NO_CACHE,
)
def upload(run: TrackedRun, object_key: str, filename: str) -> str:
    """Stream the stored export zip to Replicate's files API; returns the URL the training takes."""
    return service.upload_export(provider.replicate_client(), run.ctx.store, object_key, filename)


@flow(name="train", **LIFECYCLE_HOOKS)
def train_flow(
    dataset_id: str, options: TrainOptions, task_id: str | None = None, parent_id: str | None = None
) -> dict[str, Any]:
    """Export the dataset for Replicate, upload it and start the training; returns the training row."""
    with tracked_run("train", dataset_id, options, task_id=task_id, parent_id=parent_id) as run:
        ctx = run.ctx
        with ctx.catalog.session() as session:
            records.refuse_if_active(session, dataset_id, options.destination)
            dataset = get_dataset(session, dataset_id)
            trigger_word, dataset_name = dataset.trigger_word, dataset.name
        client = provider.replicate_client()
        plan = service.plan_training(client, options, trigger_word=trigger_word)
        run.check_cancelled()

        exported = run_flow(export_flow, dataset_id, ExportOptions(format="replicate"), parent_id=run.task_id)
        if not exported["images"]:
            raise InvalidInput("nothing to train on: the dataset's export holds no pictures")
        run.check_cancelled()
        images_url = upload(run, exported["object_key"], f"{dataset_name}-{exported['export_id'][:8]}.zip")
        run.check_cancelled()

        remote = service.start_remote(client, plan, images_url, webhook_url=webhook_url(ctx.settings))
        training = service.record_training(
            ctx,
            client,
            dataset_id=dataset_id,
            export_id=exported["export_id"],
            plan=plan,
            images_url=images_url,
            remote=remote,
            task_id=run.task_id,
        )
        result = {
            "training_id": training["id"],
            "remote_id": training["remote_id"],
            "status": training["status"],
            "trainer_version": training["trainer_version"],
            "destination": training["destination"],
            "export_id": exported["export_id"],
            "images": exported["images"],
            "export_warnings": exported["warnings"],
        }
        run.complete(result)
    return {"task_id": run.task_id, **result}
