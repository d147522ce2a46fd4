"""Start pipeline runs for the API: a task row first (409 when the dataset is busy), then the stage's flow
on a Prefect worker (the registry's deployment) or, without a Prefect server, in a thread of this process."""

from __future__ import annotations

import logging
import threading
import time
from contextlib import AbstractContextManager, nullcontext
from enum import StrEnum
from typing import Any

from pydantic import BaseModel

from flows import deployments
from flows.deployments import DEPLOYMENT_NAME as DEPLOYMENT_NAME  # re-exported for callers of the API module
from flows.deployments import DEPLOYMENTS, REQUESTED
from loraforge import tasks
from loraforge.catalog.models import Task
from loraforge.errors import LoraForgeError
from loraforge.stages.client_inputs import check_client_options
from loraforge.stages.context import Context
from loraforge.stages.options import StageOptions

log = logging.getLogger(__name__)

# The stages are the keys of the one flow registry (flows/deployments.py); `build` runs the whole pipeline.
StageName = StrEnum("StageName", {d.key: d.key for d in DEPLOYMENTS})  # type: ignore[misc]


def load_flow(stage: StageName) -> Any:
    """The Prefect flow of a stage; NotFound when its module is not part of this installation."""
    return deployments.load_flow(stage.value)


def available_flows() -> dict[StageName, Any]:
    """Every stage flow that can be imported; a missing one is logged and skipped."""
    return {StageName(key): flow for key, flow in deployments.available_flows().items()}


def deployment_name_for(flow: Any) -> str:
    """`<flow name>/loraforge`: the registry's deployment for this flow, the one `loraforge worker` serves."""
    return {d.flow_name: d.deployment_name for d in (*DEPLOYMENTS, *REQUESTED)}[flow.name]


def launch(ctx: Context, *, stage: StageName | str, dataset_id: str, options: StageOptions) -> str:
    """Check the options a client sent, create the task row and start the run; returns the task id.

    `stage` is a pipeline stage or the key of a flow the API requests (flows/deployments.py: REQUESTED);
    it is also the task's kind."""
    options = check_client_options(options, ctx.settings)
    from flows import configure_prefect

    configure_prefect(ctx.settings)  # before the flow modules import prefect, which reads its env once
    kind = str(stage)  # a StageName is its value
    flow = deployments.load_flow(kind)
    with ctx.catalog.session() as session:
        task_id = tasks.create_task(
            session,
            kind=kind,
            dataset_id=dataset_id,
            params=options.model_dump(mode="json"),
            stale_after_s=ctx.settings.task_stale_after_s,
        ).id
    arguments = {"dataset_id": dataset_id, "options": options, "task_id": task_id}
    if ctx.settings.prefect_api_url:
        run_id = _submit_deployment(flow, arguments, api_url=ctx.settings.prefect_api_url)
        if run_id is not None:
            with ctx.catalog.session() as session:
                tasks.get_task(session, task_id).orchestrator_run_id = run_id
            return task_id
    thread = threading.Thread(
        target=_run_flow,
        args=(ctx, flow, arguments),
        name=f"loraforge-{kind}-{task_id[:8]}",
        daemon=True,
    )
    thread.start()
    return task_id


def cancel(ctx: Context, task_id: str) -> None:
    """Cancel a task: its row at once (the run stops at its next heartbeat), and its Prefect flow run."""
    with ctx.catalog.session() as session:
        run_id = tasks.cancel_task(session, task_id).orchestrator_run_id
    if run_id and ctx.settings.prefect_api_url:
        try:
            _cancel_flow_run(run_id, api_url=ctx.settings.prefect_api_url)
        except Exception:  # noqa: BLE001 - the row is cancelled; the run also stops by itself
            log.warning("could not cancel Prefect flow run %s", run_id, exc_info=True)


def cancel_flow_run(ctx: Context, run_id: str) -> None:
    """Set a Prefect flow run Cancelling (the run of a task that no longer exists, e.g. a deleted dataset)."""
    if not ctx.settings.prefect_api_url:
        return  # an in-process run: it stops by itself at its next heartbeat
    try:
        _cancel_flow_run(run_id, api_url=ctx.settings.prefect_api_url)
    except Exception:  # noqa: BLE001 - the run also stops by itself at its next heartbeat
        log.warning("could not cancel Prefect flow run %s", run_id, exc_info=True)


def prefect_settings(api_url: str | None) -> AbstractContextManager[Any]:
    """Prefect pointed at the configured server even when prefect was imported before the setting was."""
    if not api_url:
        return nullcontext()
    from prefect.settings import PREFECT_API_URL, temporary_settings

    return temporary_settings(updates={PREFECT_API_URL: api_url})


def _submit_deployment(flow: Any, arguments: dict[str, Any], *, api_url: str) -> str | None:
    from prefect.deployments import run_deployment

    name = deployment_name_for(flow)
    parameters = {
        key: value.model_dump(mode="json") if isinstance(value, BaseModel) else value
        for key, value in arguments.items()
    }
    try:
        with prefect_settings(api_url):
            run = run_deployment(name=name, parameters=parameters, timeout=0, as_subflow=False)
    except Exception as exc:  # noqa: BLE001 - no deployment or no server: the thread path still works
        log.warning("deployment %s unavailable (%s); running the flow in the API process", name, exc)
        return None
    return str(run.id)  # type: ignore[union-attr]


def _cancel_flow_run(run_id: str, *, api_url: str) -> None:
    from prefect import get_client
    from prefect.states import Cancelling

    with prefect_settings(api_url), get_client(sync_client=True) as client:
        client.set_flow_run_state(
            run_id, Cancelling(message="cancelled through the LoRA Forge API"), force=True
        )


START_ATTEMPTS = 5
"""How often an accepted run is tried while it cannot even start (e.g. Prefect's server answers 503)."""


def _run_flow(ctx: Context, flow: Any, arguments: dict[str, Any], *, backoff_s: float = 2.0) -> None:
    """Run an accepted flow in this thread. A run that failed before it took its task row (the row is
    still PENDING) never began its work, so it is tried again with back-off: a 202 is not lost to a
    moment of orchestrator overload. A failure after it began is recorded by the flow itself."""
    task_id = arguments["task_id"]
    for attempt in range(1, START_ATTEMPTS + 1):
        try:
            with prefect_settings(ctx.settings.prefect_api_url):
                flow(**arguments)
            return
        except BaseException as exc:  # noqa: BLE001 - a background run must record, not propagate, its failure
            if (
                attempt < START_ATTEMPTS
                and isinstance(exc, Exception)
                and not isinstance(exc, LoraForgeError)
                and _never_started(ctx, task_id)
            ):
                delay = backoff_s * 2 ** (attempt - 1)
                log.warning("run %s could not start (%r); trying again in %.0f s", task_id, exc, delay)
                time.sleep(delay)
                continue
            log.warning("flow %s for task %s ended: %r", getattr(flow, "name", flow), task_id, exc)
            _mark_failed(ctx, task_id, exc)
            return


def _never_started(ctx: Context, task_id: str) -> bool:
    try:
        with ctx.catalog.session() as session:
            task = session.get(Task, task_id)
            return task is not None and task.status == tasks.TaskStatus.PENDING
    except Exception:  # noqa: BLE001 - cannot tell: do not run twice
        return False


def _mark_failed(ctx: Context, task_id: str, exc: BaseException) -> None:
    """Flows record their own end once started; this covers a failure before the flow took the row."""
    try:
        with ctx.catalog.session() as session:
            tasks.end_task(session, task_id, tasks.TaskStatus.FAILED, f"{exc.__class__.__name__}: {exc}")
    except Exception:  # noqa: BLE001 - the catalog itself may be what failed
        log.exception("could not mark task %s failed", task_id)
