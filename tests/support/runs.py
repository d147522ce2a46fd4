"""Run the stage flows by dataset name, as the CLI does: resolve the name to an id once, build the options."""

from __future__ import annotations

from typing import Any

from loraforge.stages.context import open_context
from loraforge.stages.datasets import ensure_dataset, find_dataset
from loraforge.stages.options import (
    BucketOptions,
    BuildOptions,
    CaptionOptions,
    CurateOptions,
    ExportOptions,
    IngestOptions,
)


def dataset_id(name: str, *, create: bool = False, **fields: Any) -> str:
    ctx = open_context()
    with ctx.catalog.session() as session:
        if create or fields:
            return ensure_dataset(session, name, **fields).id
        return find_dataset(session, name).id


def ingest(dataset: str = "alice", **options: Any) -> dict[str, Any]:
    from flows.ingest import ingest_flow

    return ingest_flow(dataset_id(dataset, create=True), IngestOptions(**options))


def curate(dataset: str = "alice", **options: Any) -> dict[str, Any]:
    from flows.curate import curate_flow

    return curate_flow(dataset_id(dataset), CurateOptions(**options))


def caption(dataset: str = "alice", **options: Any) -> dict[str, Any]:
    from flows.caption import caption_flow

    return caption_flow(dataset_id(dataset), CaptionOptions(**options))


def bucket(dataset: str = "alice", **options: Any) -> dict[str, Any]:
    from flows.bucket import bucket_flow

    return bucket_flow(dataset_id(dataset), BucketOptions(**options))


def export(dataset: str = "alice", out: str | None = None, **options: Any) -> dict[str, Any]:
    from flows.export import export_flow

    return export_flow(dataset_id(dataset), ExportOptions(**options), out=out)


def build(dataset: str = "alice", out: str | None = None, **options: Any) -> dict[str, Any]:
    from flows.build_dataset import build_dataset_flow

    built = BuildOptions(**options)
    ident = dataset_id(
        dataset, create=True, trigger=built.trigger, class_word=built.class_word, target=built.target
    )
    return build_dataset_flow(ident, built, out=out)


def prefect_task_runs(task_id: str) -> list[Any]:
    """The Prefect task runs of the flow run that carried a LoRA Forge task (its orchestrator_run_id)."""
    import uuid

    from prefect import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    from loraforge.catalog.models import Task

    with open_context().catalog.session() as session:
        task = session.get(Task, task_id)
        assert task is not None and task.orchestrator_run_id
        run_id = uuid.UUID(task.orchestrator_run_id)
    with get_client(sync_client=True) as client:
        return list(client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[run_id]))))
