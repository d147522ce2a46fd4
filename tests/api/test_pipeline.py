"""The API's run launcher without Prefect: argument checks and failure bookkeeping on the task row."""

from __future__ import annotations

import pytest

from loraforge.catalog.models import Task
from loraforge.errors import NotFound
from loraforge.stages.context import Context
from services.api import pipeline
from tests.api.factories import make_dataset, make_workspace


class FakeFlow:
    """Stands in for a Prefect flow object: a name and the wrapped function."""

    name = "fake"

    def __init__(self, fn: object) -> None:
        self.fn = fn

    def __call__(self, **kwargs: object) -> object:
        return self.fn(**kwargs)  # type: ignore[operator]


def needs_sources(dataset_id: str, task_id: str | None = None) -> None:
    raise RuntimeError("the cluster is on fire")


def test_a_flow_that_dies_before_taking_its_task_marks_it_failed(ctx: Context) -> None:
    from loraforge import tasks

    with ctx.catalog.session() as session:
        dataset_id = make_dataset(session, make_workspace(session)).id
        task_id = tasks.create_task(session, kind="ingest", dataset_id=dataset_id).id
    with ctx.catalog.session() as session:
        assert session.get(Task, task_id).status == "PENDING"  # type: ignore[union-attr]
    arguments = {"dataset_id": dataset_id, "task_id": task_id}
    pipeline._run_flow(ctx, FakeFlow(needs_sources), arguments, backoff_s=0.01)
    with ctx.catalog.session() as session:
        task = session.get(Task, task_id)
        assert task is not None and task.status == "FAILED"
        assert task.error == "RuntimeError: the cluster is on fire"


def test_an_accepted_run_that_cannot_start_yet_is_tried_again(ctx: Context) -> None:
    """Prefect's server answering 503 before the flow took its task row must not lose a 202'd run."""
    from loraforge import tasks

    with ctx.catalog.session() as session:
        dataset_id = make_dataset(session, make_workspace(session)).id
        task_id = tasks.create_task(session, kind="ingest", dataset_id=dataset_id).id
    calls: list[str] = []

    def flaky_start(dataset_id: str, task_id: str) -> None:
        calls.append(task_id)
        if len(calls) < 3:
            raise ConnectionError("503 Service Unavailable from the orchestrator")
        with ctx.catalog.session() as session:
            tasks.start_task(session, task_id)
        with ctx.catalog.session() as session:
            tasks.complete_task(session, task_id, {"ok": True})

    pipeline._run_flow(
        ctx, FakeFlow(flaky_start), {"dataset_id": dataset_id, "task_id": task_id}, backoff_s=0.01
    )

    assert len(calls) == 3
    with ctx.catalog.session() as session:
        assert session.get(Task, task_id).status == "COMPLETED"  # type: ignore[union-attr]


def test_a_run_that_failed_after_it_began_is_not_run_twice(ctx: Context) -> None:
    from loraforge import tasks

    with ctx.catalog.session() as session:
        dataset_id = make_dataset(session, make_workspace(session)).id
        task_id = tasks.create_task(session, kind="ingest", dataset_id=dataset_id).id
    calls: list[str] = []

    def began_then_failed(dataset_id: str, task_id: str) -> None:
        calls.append(task_id)
        with ctx.catalog.session() as session:
            tasks.start_task(session, task_id)
        raise ConnectionError("lost the store mid-run")

    pipeline._run_flow(
        ctx, FakeFlow(began_then_failed), {"dataset_id": dataset_id, "task_id": task_id}, backoff_s=0.01
    )

    assert len(calls) == 1
    with ctx.catalog.session() as session:
        assert session.get(Task, task_id).status == "FAILED"  # type: ignore[union-attr]


def test_available_flows_include_ingest_and_missing_stages_are_not_found() -> None:
    flows = pipeline.available_flows()
    assert flows[pipeline.StageName.ingest].name == "ingest"
    for stage in set(pipeline.StageName) - set(flows):
        with pytest.raises(NotFound, match="not available"):
            pipeline.load_flow(stage)
