"""With a Prefect server configured, runs go to the served deployment, else fall back to a local thread."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from uuid import UUID

import pytest
from fastapi.testclient import TestClient

from flows.deployments import DEPLOYMENT_NAME
from loraforge.config import get_settings
from loraforge.stages.context import Context
from tests.api.factories import make_dataset, make_workspace
from tests.api.test_runs import wait_for_task

pytestmark = pytest.mark.usefixtures("prefect_harness", "ray_cluster")
API = "/api/v1"


@pytest.fixture
def prefect_server(stack_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> str:
    """Point LoRA Forge at the harness's Prefect server, as LORAFORGE_PREFECT_API_URL does in deployment."""
    from prefect.settings import PREFECT_API_URL

    url = str(PREFECT_API_URL.value())
    monkeypatch.setenv("PREFECT_API_URL", url)  # restored after the test, though the API writes it too
    monkeypatch.setenv("LORAFORGE_PREFECT_API_URL", url)
    get_settings.cache_clear()
    return url


@pytest.fixture
def ingest_deployment(prefect_server: str) -> Iterator[UUID]:
    """The deployment `loraforge worker` would serve, registered without a worker to run it."""
    from prefect import get_client

    from flows.ingest import ingest_flow

    deployment_id = ingest_flow.to_deployment(name=DEPLOYMENT_NAME).apply()
    yield deployment_id
    with get_client(sync_client=True) as prefect:
        prefect.delete_deployment(deployment_id)


def test_run_is_submitted_to_the_served_deployment(
    client: TestClient, ctx: Context, ingest_deployment: UUID
) -> None:
    from prefect import get_client

    with ctx.catalog.session() as session:
        dataset = make_dataset(session, make_workspace(session))
    accepted = client.post(
        f"{API}/datasets/{dataset.id}/runs/ingest", json={"sources": ["https://example.com/in.jpg"]}
    )
    assert accepted.status_code == 202
    task = client.get(f"{API}/tasks/{accepted.json()['task_id']}").json()
    assert task["status"] == "PENDING" and task["orchestrator_run_id"]  # no worker here picks it up
    with get_client(sync_client=True) as prefect:
        run = prefect.read_flow_run(task["orchestrator_run_id"])
    assert run.deployment_id == ingest_deployment
    assert run.parameters["dataset_id"] == dataset.id and run.parameters["task_id"] == task["id"]
    assert run.parameters["options"]["sources"] == ["https://example.com/in.jpg"]


def test_without_a_deployment_the_run_falls_back_to_a_thread(
    client: TestClient, ctx: Context, prefect_server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LORAFORGE_IMPORT_ROOTS", str(tmp_path))
    get_settings.cache_clear()
    with ctx.catalog.session() as session:
        dataset = make_dataset(session, make_workspace(session))
    accepted = client.post(f"{API}/datasets/{dataset.id}/runs/ingest", json={"sources": [str(tmp_path)]})
    task = wait_for_task(client, accepted.json()["task_id"])
    assert task["status"] == "COMPLETED" and task["orchestrator_run_id"]  # the in-process flow run's id
