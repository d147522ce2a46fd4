"""flows/deployments.py is the one flow registry: the flows, worker, API and prefect.yaml agree with it."""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from flows import deployments
from flows.deployments import BY_KEY, DEPLOYMENT_NAME, DEPLOYMENTS, REQUESTED, SCHEDULED, FlowDeployment

REPO_ROOT = Path(__file__).resolve().parents[2]
PREFECT_YAML = REPO_ROOT / "infra" / "prefect" / "prefect.yaml"


ALL = (*DEPLOYMENTS, *REQUESTED, *SCHEDULED)


def test_registry_keys_names_and_entrypoints_are_unique() -> None:
    assert len(BY_KEY) == len(DEPLOYMENTS)
    assert len({d.key for d in ALL}) == len(ALL)
    assert len({d.flow_name for d in ALL}) == len(ALL)
    assert len({d.entrypoint for d in ALL}) == len(ALL)
    assert all(d.schedule_setting for d in SCHEDULED) and not any(d.schedule_setting for d in DEPLOYMENTS)
    assert all(BY_KEY[d.key] is d for d in DEPLOYMENTS)
    assert BY_KEY["build"].deployment_name == f"build-dataset/{DEPLOYMENT_NAME}"


def test_importing_the_registry_does_not_import_prefect() -> None:
    code = "import sys, flows.deployments; assert 'prefect' not in sys.modules, 'prefect imported'"
    subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, check=True)


@pytest.mark.parametrize("deployment", ALL, ids=lambda d: d.key)
def test_entrypoint_is_a_prefect_flow_with_the_registered_name(deployment: FlowDeployment) -> None:
    from prefect import Flow

    path, function = deployment.entrypoint.split(":")
    assert (REPO_ROOT / path).is_file(), path
    flow = getattr(importlib.import_module(path.removesuffix(".py").replace("/", ".")), function)
    assert isinstance(flow, Flow)
    assert flow.name == deployment.flow_name
    assert deployments.load_flow(deployment.key) is flow


def test_prefect_yaml_deploys_exactly_the_registry() -> None:
    config: dict[str, Any] = yaml.safe_load(PREFECT_YAML.read_text())
    in_yaml = [(d["name"], d["entrypoint"]) for d in config["deployments"]]
    assert len(in_yaml) == len(set(in_yaml))
    assert set(in_yaml) == {(DEPLOYMENT_NAME, d.entrypoint) for d in ALL}


def test_prefect_yaml_schedules_are_the_settings_defaults() -> None:
    from loraforge.config import Settings
    from loraforge.schedules import parse_schedule

    config: dict[str, Any] = yaml.safe_load(PREFECT_YAML.read_text())
    by_entrypoint = {d["entrypoint"]: d for d in config["deployments"]}
    for deployment in SCHEDULED:
        default = Settings.model_fields[deployment.schedule_setting or ""].default
        expected = parse_schedule(default)
        (schedule,) = by_entrypoint[deployment.entrypoint]["schedules"]
        assert schedule.get("interval") == expected.interval_s and schedule.get("cron") == expected.cron
    for deployment in (*DEPLOYMENTS, *REQUESTED):
        assert not by_entrypoint[deployment.entrypoint].get("schedules")


def test_worker_serves_the_registry_deployments() -> None:
    from services.cli.serve import WORKER_HELP, worker_deployments

    served = worker_deployments()
    assert {f"{d.flow_name}/{d.name}" for d in served} == {d.deployment_name for d in ALL}
    assert {d.entrypoint for d in served} <= {d.entrypoint for d in ALL} | {None}
    for deployment in ALL:
        assert deployment.deployment_name in WORKER_HELP


def test_worker_schedules_come_from_the_settings() -> None:
    from loraforge.config import load_settings

    settings = load_settings(
        schedule_reap_tasks="7", schedule_check_integrity="15 4 * * *", schedule_sync_sources="off"
    )
    served = {d.flow_name: d for d in deployments.to_deployments(settings)}

    def schedules(flow_name: str) -> list[Any]:
        return [item.schedule for item in served[flow_name].schedules or []]

    (reaper,) = schedules("reap-stale-tasks")
    assert reaper.interval.total_seconds() == 7
    (integrity,) = schedules("check-integrity")
    assert integrity.cron == "15 4 * * *"
    assert schedules("sync-sources") == []
    assert all(schedules(d.flow_name) == [] for d in DEPLOYMENTS)


def test_api_stage_names_are_the_registry_keys() -> None:
    from services.api import pipeline

    assert {stage.value for stage in pipeline.StageName} == set(BY_KEY)
    assert pipeline.DEPLOYMENT_NAME == DEPLOYMENT_NAME
    for stage in pipeline.StageName:
        assert pipeline.load_flow(stage).name == BY_KEY[stage.value].flow_name


def test_api_submits_runs_to_the_registry_deployment_name(monkeypatch: pytest.MonkeyPatch) -> None:
    import prefect.deployments

    from services.api import pipeline

    submitted: list[str] = []

    class Run:
        id = "run-1"

    def fake_run_deployment(*, name: str, **_: Any) -> Run:
        submitted.append(name)
        return Run()

    monkeypatch.setattr(prefect.deployments, "run_deployment", fake_run_deployment)
    for deployment in DEPLOYMENTS:
        flow = deployments.load_flow(deployment.key)
        assert pipeline.deployment_name_for(flow) == deployment.deployment_name
        assert pipeline._submit_deployment(flow, {}, api_url="http://127.0.0.1:1/api") == "run-1"
    assert submitted == [d.deployment_name for d in DEPLOYMENTS]


def test_a_missing_flow_module_is_not_found_and_skipped(monkeypatch: pytest.MonkeyPatch) -> None:
    from loraforge.errors import NotFound

    missing = FlowDeployment("ghost", "ghost", "flows/ghost.py:ghost_flow")
    monkeypatch.setattr(deployments, "DEPLOYMENTS", (*DEPLOYMENTS, missing))
    monkeypatch.setitem(deployments.BY_KEY, "ghost", missing)
    with pytest.raises(NotFound, match=r"stage 'ghost' is not available: flows\.ghost"):
        deployments.load_flow("ghost")
    assert "ghost" not in deployments.available_flows()


def test_other_import_errors_propagate(monkeypatch: pytest.MonkeyPatch) -> None:
    broken = FlowDeployment("broken", "broken", "json/missing_module_xyz.py:flow")
    monkeypatch.setitem(deployments.BY_KEY, "broken", broken)
    with pytest.raises(ModuleNotFoundError):
        deployments.load_flow("broken")
