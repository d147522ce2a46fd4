"""The one registry of pipeline flows and their deployments: the worker, the API and prefect.yaml use it."""

from __future__ import annotations

import importlib
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from loraforge.errors import NotFound

if TYPE_CHECKING:
    from prefect import Flow
    from prefect.deployments.runner import RunnerDeployment

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


def load_flow(key: str) -> Flow[..., Any]:
    """The Prefect flow of a stage; NotFound when its module is not part of this installation."""
    deployment = BY_KEY[key]
    try:
        module = importlib.import_module(deployment.module)
    except ModuleNotFoundError as exc:
        # Only a missing flow module (or a flow it builds on) means "not available"; anything else is a bug.
        if not (exc.name or "").startswith("flows."):
            raise
        raise NotFound(f"stage {deployment.key!r} is not available: {exc.name} is not installed") from exc
    return getattr(module, deployment.function)  # type: ignore[no-any-return]


def available_flows() -> dict[str, Flow[..., Any]]:
    """Every stage flow that can be imported, by key; a missing one is logged and skipped."""
    found: dict[str, Flow[..., Any]] = {}
    for deployment in DEPLOYMENTS:
        try:
            found[deployment.key] = load_flow(deployment.key)
        except NotFound as exc:
            log.warning("%s", exc)
    return found


def to_deployments() -> list[RunnerDeployment]:
    """One deployment per importable flow, named DEPLOYMENT_NAME: what `loraforge worker` serves."""
    return [flow.to_deployment(name=DEPLOYMENT_NAME) for flow in available_flows().values()]
