"""The chart's KubeRay RayCluster (ray.io/v1): no schema ships for it, so its shape is checked here."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

RAY_NAME = "lf-loraforge-ray"
Render = Callable[..., Any]


def ray_cluster(render: Render, values: dict[str, Any] | None = None) -> dict[str, Any]:
    return render(values).find("RayCluster", RAY_NAME)


def groups(cluster: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {group["groupName"]: group for group in cluster["spec"]["workerGroupSpecs"]}


def only_container(group: dict[str, Any]) -> dict[str, Any]:
    containers = group["template"]["spec"]["containers"]
    assert len(containers) == 1
    return containers[0]


def test_cluster_has_head_and_cpu_group_by_default(render: Render) -> None:
    cluster = ray_cluster(render)
    assert cluster["apiVersion"] == "ray.io/v1"
    assert cluster["spec"]["rayVersion"] == "2.60.0"
    head = cluster["spec"]["headGroupSpec"]
    ports = {port["name"]: port["containerPort"] for port in only_container(head)["ports"]}
    assert ports == {"gcs-server": 6379, "dashboard": 8265, "client": 10001}
    assert set(groups(cluster)) == {"cpu"}
    cpu = only_container(groups(cluster)["cpu"])
    assert "nvidia.com/gpu" not in cpu["resources"].get("limits", {})


def test_gpu_group_requests_gpus_when_enabled(render: Render) -> None:
    values = {"ray": {"gpuWorkers": {"enabled": True, "gpusPerWorker": 2, "image": {"tag": "0.1.0-cuda"}}}}
    gpu = groups(ray_cluster(render, values))["gpu"]
    container = only_container(gpu)
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 2
    # The chart's CPU/memory limits survive next to the GPU limit.
    assert container["resources"]["limits"]["memory"] == "32Gi"
    assert gpu["rayStartParams"]["num-gpus"] == "2"
    assert container["image"].endswith(":0.1.0-cuda")
    tolerations = gpu["template"]["spec"]["tolerations"]
    assert any(t["key"] == "nvidia.com/gpu" for t in tolerations)


@pytest.mark.parametrize("values", [{}, {"ray": {"gpuWorkers": {"enabled": True}}}], ids=["cpu", "gpu"])
def test_group_sizes_and_start_params_are_well_formed(render: Render, values: dict[str, Any]) -> None:
    cluster = ray_cluster(render, values)
    spec = cluster["spec"]
    # KubeRay's rayStartParams is map[string]string: a number here is rejected by the operator.
    for group in [spec["headGroupSpec"], *spec["workerGroupSpecs"]]:
        assert all(isinstance(value, str) for value in group["rayStartParams"].values())
    for group in spec["workerGroupSpecs"]:
        assert 0 <= group["minReplicas"] <= group["replicas"] <= group["maxReplicas"]
    names = [group["groupName"] for group in spec["workerGroupSpecs"]]
    assert len(names) == len(set(names))


def test_every_ray_node_gets_settings_and_auth_token(render: Render) -> None:
    rendered = render({"ray": {"gpuWorkers": {"enabled": True}}, "secrets": {"rayAuthToken": "rt"}})
    cluster = rendered.find("RayCluster", RAY_NAME)
    for template in rendered.pod_templates(cluster):
        env = rendered.env_of(template["spec"]["containers"][0])
        assert env["RAY_AUTH_MODE"] == "token"
        assert env["RAY_AUTH_TOKEN"] == "rt"
        assert env["LORAFORGE_CATALOG_URL"].startswith("postgresql+psycopg://")
        assert env["LORAFORGE_MODEL_DIR"] == "/models"
        mounts = {m["mountPath"] for m in template["spec"]["containers"][0]["volumeMounts"]}
        assert {"/models", "/dev/shm"} <= mounts
    worker = rendered.find("Deployment", "lf-loraforge-worker")["spec"]["template"]["spec"]["containers"][0]
    worker_env = rendered.env_of(worker)
    assert worker_env["RAY_AUTH_TOKEN"] == "rt"


def test_head_keeps_tasks_off_by_default(render: Render) -> None:
    head = ray_cluster(render)["spec"]["headGroupSpec"]
    assert head["rayStartParams"]["num-cpus"] == "0"
    assert head["rayStartParams"]["dashboard-host"] == "0.0.0.0"


def test_ray_auth_can_be_turned_off(render: Render) -> None:
    rendered = render({"ray": {"auth": False}})
    assert "RAY_AUTH_MODE" not in rendered.find("ConfigMap", "lf-loraforge-settings")["data"]
    assert "RAY_AUTH_TOKEN" not in rendered.secret_data("lf-loraforge")
