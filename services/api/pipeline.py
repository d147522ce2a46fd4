"""Start pipeline flows for the API: a pre-created task row, then a thread or a Prefect deployment."""

from __future__ import annotations

import inspect
import logging
import shutil
import threading
from contextlib import AbstractContextManager, nullcontext
from enum import StrEnum
from pathlib import Path
from typing import Any

from flows import deployments
from flows.deployments import DEPLOYMENT_NAME as DEPLOYMENT_NAME  # re-exported for callers of the API module
from flows.deployments import DEPLOYMENTS
from loraforge.catalog import queries
from loraforge.catalog.models import Task
from loraforge.errors import InvalidInput
from loraforge.stages.context import Context

log = logging.getLogger(__name__)

FINISHED = ("COMPLETED", "FAILED", "CANCELLED")

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
    return {d.flow_name: d.deployment_name for d in DEPLOYMENTS}[flow.name]


def flow_arguments(
    flow: Any, *, dataset: str, workspace: str, task_id: str, params: dict[str, Any]
) -> dict[str, Any]:
    """Keyword arguments for the flow, checked against its signature so a typo is a 422, not a crash."""
    signature = inspect.signature(getattr(flow, "fn", flow))
    accepted = set(signature.parameters)
    unknown = sorted(set(params) - accepted)
    if unknown:
        raise InvalidInput(
            f"unknown parameter(s) for {flow.name}: {', '.join(unknown)}; "
            f"accepted: {', '.join(sorted(accepted))}"
        )
    fixed = {"dataset": dataset, "workspace": workspace, "task_id": task_id}
    arguments = {**params, **{key: value for key, value in fixed.items() if key in accepted}}
    missing = [
        name
        for name, parameter in signature.parameters.items()
        if parameter.default is inspect.Parameter.empty
        and parameter.kind not in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
        and name not in arguments
    ]
    if missing:
        raise InvalidInput(f"{flow.name} needs parameter(s): {', '.join(missing)}")
    return arguments


def create_pending_task(ctx: Context, *, kind: str, dataset_id: str, params: dict[str, Any]) -> str:
    with ctx.catalog.session() as session:
        task = queries.create_task(session, kind=kind, dataset_id=dataset_id, total=0, params=params)
        task.status, task.started_at = "PENDING", None
        return task.id


def launch(
    ctx: Context,
    *,
    stage: StageName,
    dataset_id: str,
    dataset: str,
    workspace: str,
    params: dict[str, Any],
    cleanup: Path | None = None,
) -> str:
    """Pre-create the task row and start the stage's flow; returns the task id to poll.

    With LORAFORGE_PREFECT_API_URL set and a served deployment, the flow runs on a Prefect worker;
    otherwise (and always for uploads, whose files live on this host) in a thread of this process.
    """
    from flows._common import configure_prefect

    configure_prefect(ctx.settings)  # before the flow modules import prefect, which reads its env once
    flow = load_flow(stage)
    kwargs = flow_arguments(flow, dataset=dataset, workspace=workspace, task_id="", params=params)
    task_id = create_pending_task(ctx, kind=stage.value, dataset_id=dataset_id, params=_jsonable(params))
    if "task_id" in kwargs:
        kwargs["task_id"] = task_id
    if ctx.settings.prefect_api_url and cleanup is None:
        run_id = _submit_deployment(flow, kwargs, api_url=ctx.settings.prefect_api_url)
        if run_id is not None:
            with ctx.catalog.session() as session:
                task = session.get(Task, task_id)
                if task is not None:
                    task.orchestrator_run_id = run_id
            return task_id
    thread = threading.Thread(
        target=_run_flow,
        args=(ctx, flow, kwargs, task_id, cleanup),
        name=f"loraforge-{stage.value}-{task_id[:8]}",
        daemon=True,
    )
    thread.start()
    return task_id


def prefect_settings(api_url: str | None) -> AbstractContextManager[Any]:
    """Prefect pointed at the configured server even when prefect was imported before the setting was."""
    if not api_url:
        return nullcontext()
    from prefect.settings import PREFECT_API_URL, temporary_settings

    return temporary_settings(updates={PREFECT_API_URL: api_url})


def _submit_deployment(flow: Any, kwargs: dict[str, Any], *, api_url: str) -> str | None:
    from prefect.deployments import run_deployment

    name = deployment_name_for(flow)
    try:
        with prefect_settings(api_url):
            run = run_deployment(name=name, parameters=kwargs, timeout=0, as_subflow=False)
    except Exception as exc:  # noqa: BLE001 - no deployment or no server: the thread path still works
        log.warning("deployment %s unavailable (%s); running the flow in the API process", name, exc)
        return None
    return str(run.id)  # type: ignore[union-attr]


def _run_flow(ctx: Context, flow: Any, kwargs: dict[str, Any], task_id: str, cleanup: Path | None) -> None:
    try:
        with prefect_settings(ctx.settings.prefect_api_url):
            flow(**kwargs)
    except BaseException as exc:  # noqa: BLE001 - a background run must record, not propagate, its failure
        log.exception("flow %s for task %s failed", getattr(flow, "name", flow), task_id)
        _mark_failed(ctx, task_id, exc)
    finally:
        if cleanup is not None:
            shutil.rmtree(cleanup, ignore_errors=True)


def _mark_failed(ctx: Context, task_id: str, exc: BaseException) -> None:
    """Flows record their own failures once started; this covers a failure before the flow took the row."""
    try:
        with ctx.catalog.session() as session:
            task = session.get(Task, task_id)
            if task is not None and task.status not in FINISHED:
                queries.finish_task(
                    session, task_id, status="FAILED", error=f"{exc.__class__.__name__}: {exc}"
                )
    except Exception:  # noqa: BLE001 - the catalog itself may be what failed
        log.exception("could not mark task %s failed", task_id)


def _jsonable(params: dict[str, Any]) -> dict[str, Any]:
    return {
        key: value if isinstance(value, str | int | float | bool | None | list | dict) else str(value)
        for key, value in params.items()
    }
