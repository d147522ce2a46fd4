"""The one registry of pipeline flows and their deployments: the worker, the API and prefect.yaml use it."""

from __future__ import annotations

import importlib
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from loraforge.errors import NotFound
from loraforge.schedules import parse_schedule

if TYPE_CHECKING:
    from prefect import Flow
    from prefect.deployments.runner import RunnerDeployment

    from loraforge.config import Settings

log = logging.getLogger(__name__)

DEPLOYMENT_NAME = "loraforge"
"""Deployment name every flow is served and deployed under: `<flow name>/loraforge`."""


@dataclass(frozen=True)
class FlowDeployment:
    """One pipeline flow: its stage key, its Prefect flow name and where its function lives."""

    key: str
    """Stage name used by the API routes and the CLI."""
    flow_name: str
    """The `name` given to `@flow`."""
    entrypoint: str
    """`path/to/file.py:function`, relative to the repository root (as prefect.yaml writes it)."""
    schedule_setting: str | None = None
    """For scheduled flows: the Settings field holding their schedule (seconds, cron or "off")."""

    @property
    def deployment_name(self) -> str:
        return f"{self.flow_name}/{DEPLOYMENT_NAME}"

    @property
    def module(self) -> str:
        path, _ = self.entrypoint.split(":")
        return path.removesuffix(".py").replace("/", ".")

    @property
    def function(self) -> str:
        return self.entrypoint.split(":")[1]


DEPLOYMENTS: tuple[FlowDeployment, ...] = (
    FlowDeployment("ingest", "ingest", "flows/ingest.py:ingest_flow"),
    FlowDeployment("curate", "curate", "flows/curate.py:curate_flow"),
    FlowDeployment("caption", "caption", "flows/caption.py:caption_flow"),
    FlowDeployment("bucket", "bucket", "flows/bucket.py:bucket_flow"),
    FlowDeployment("export", "export", "flows/export.py:export_flow"),
    FlowDeployment("build", "build-dataset", "flows/build_dataset.py:build_dataset_flow"),
)
BY_KEY: dict[str, FlowDeployment] = {deployment.key: deployment for deployment in DEPLOYMENTS}
"""The pipeline stages: what the API and the CLI start runs of."""

REQUESTED: tuple[FlowDeployment, ...] = (
    FlowDeployment("search", "search-add", "flows/search.py:search_add_flow"),
)
"""Flows the API starts that are not pipeline stages: no run route or CLI stage of their own."""

SCHEDULED: tuple[FlowDeployment, ...] = (
    FlowDeployment(
        "reap-tasks", "reap-stale-tasks", "flows/maintenance.py:reap_stale_tasks_flow", "schedule_reap_tasks"
    ),
    FlowDeployment(
        "sync-sources", "sync-sources", "flows/maintenance.py:sync_sources_flow", "schedule_sync_sources"
    ),
    FlowDeployment(
        "sync-trainings",
        "sync-trainings",
        "flows/maintenance.py:sync_trainings_flow",
        "schedule_sync_trainings",
    ),
    FlowDeployment(
        "check-integrity",
        "check-integrity",
        "flows/maintenance.py:check_integrity_flow",
        "schedule_check_integrity",
    ),
)
"""Maintenance flows the worker serves on a schedule (loraforge/config.py: `schedule_*`)."""


def load_flow(key: str) -> Flow[..., Any]:
    """The Prefect flow of a stage, requested or scheduled flow; NotFound when its module is not installed."""
    deployment = BY_KEY.get(key) or {d.key: d for d in (*REQUESTED, *SCHEDULED)}[key]
    try:
        module = importlib.import_module(deployment.module)
    except ModuleNotFoundError as exc:
        # Only a missing flow module (or a flow it builds on) means "not available"; anything else is a bug.
        if not (exc.name or "").startswith("flows."):
            raise
        raise NotFound(f"stage {deployment.key!r} is not available: {exc.name} is not installed") from exc
    return getattr(module, deployment.function)  # type: ignore[no-any-return]


def available_flows(registry: tuple[FlowDeployment, ...] = DEPLOYMENTS) -> dict[str, Flow[..., Any]]:
    """Every flow of the registry (by default the stages) that can be imported, by key; a missing one is
    logged and skipped."""
    found: dict[str, Flow[..., Any]] = {}
    for deployment in registry:
        try:
            found[deployment.key] = load_flow(deployment.key)
        except NotFound as exc:
            log.warning("%s", exc)
    return found


def to_deployments(settings: Settings | None = None) -> list[RunnerDeployment]:
    """What `loraforge worker` serves: every importable pipeline and requested flow, plus the scheduled
    flows with the schedules their settings give. All are named DEPLOYMENT_NAME."""
    from loraforge.config import get_settings

    settings = settings or get_settings()
    on_demand = available_flows((*DEPLOYMENTS, *REQUESTED)).values()
    served = [flow.to_deployment(name=DEPLOYMENT_NAME) for flow in on_demand]
    for deployment in SCHEDULED:
        schedule = parse_schedule(getattr(settings, deployment.schedule_setting or ""))
        served.append(
            load_flow(deployment.key).to_deployment(
                name=DEPLOYMENT_NAME,
                interval=schedule.interval_s,
                cron=schedule.cron,
                description=f"Scheduled by LORAFORGE_{(deployment.schedule_setting or '').upper()}.",
            )
        )
    return served
