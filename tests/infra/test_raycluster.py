"""The chart's KubeRay RayCluster (ray.io/v1): validated against KubeRay's own CRD schema, and its wiring."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest

RAY_NAME = "lf-loraforge-ray"
SECRET = "lf-loraforge"
SCHEMAS = Path(__file__).with_name("schemas")
# The oldest KubeRay the chart supports (Chart.yaml) and a current one; see schemas/README.md.
KUBERAY_VERSIONS = ("1.1.0", "1.7.0")
GPU_VALUES = {"ray": {"gpuWorkers": {"enabled": True}}}
Render = Callable[..., Any]


@cache
def strict_schema(kuberay_version: str) -> dict[str, Any]:
    """The CRD's schema, refusing unknown fields as `kubectl apply` (strict field validation) does.

    A CRD schema lists the known fields of each object but does not close it; the API server drops or rejects
    unknown ones. `additionalProperties: false` on every object that lists its properties does the same here,
    except where the CRD keeps unknown fields on purpose.
    """
    schema = json.loads((SCHEMAS / f"raycluster-v1-kuberay-{kuberay_version}.json").read_text())

    def close(node: Any) -> None:
        if isinstance(node, dict):
            if (
                "properties" in node
                and "additionalProperties" not in node
                and not node.get("x-kubernetes-preserve-unknown-fields")
            ):
                node["additionalProperties"] = False
            for value in node.values():
                close(value)
        elif isinstance(node, list):
            for value in node:
                close(value)

    close(schema)
    return schema


def validate_against_crd(cluster: dict[str, Any], kuberay_version: str) -> None:
    jsonschema.Draft4Validator(strict_schema(kuberay_version)).validate(cluster)


def ray_cluster(render: Render, values: dict[str, Any] | None = None) -> dict[str, Any]:
    return render(values).find("RayCluster", RAY_NAME)


def groups(cluster: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {group["groupName"]: group for group in cluster["spec"]["workerGroupSpecs"]}


def only_container(group: dict[str, Any]) -> dict[str, Any]:
    containers = group["template"]["spec"]["containers"]
    assert len(containers) == 1
    return containers[0]


VARIANTS = {
    "default": {},
    "gpu": {"ray": {"gpuWorkers": {"enabled": True, "gpusPerWorker": 2, "nodeSelector": {"gpu": "a100"}}}},
    "no-autoscaling": {"ray": {"enableInTreeAutoscaling": False}},
    "existing-secret": {"secrets": {"existingSecret": "mine"}},
    "no-auth-start-params": {
        "ray": {"auth": False, "head": {"rayStartParams": {"object-store-memory": 10**9}}},
    },
}


@pytest.mark.parametrize("kuberay_version", KUBERAY_VERSIONS)
@pytest.mark.parametrize("values", VARIANTS.values(), ids=VARIANTS.keys())
def test_cluster_validates_against_kuberay_crd(
    render: Render, values: dict[str, Any], kuberay_version: str
) -> None:
    rendered = render(values)
    cluster = rendered.find("RayCluster", RAY_NAME)
    validate_against_crd(cluster, kuberay_version)
    # The pod templates inside, against Kubernetes' own PodTemplate schema (the CRD's copy is looser).
    for template in rendered.pod_templates(cluster):
        pod_template = {
            "apiVersion": "v1",
            "kind": "PodTemplate",
            "metadata": {"name": "t"},
            "template": template,
        }
        kubernetes_validate.validate(pod_template, "1.37.0", strict=True)


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("spec", "enableInTreeAutoscalling"), True),
        (("spec", "headGroupSpec", "rayStartParams", "num-cpus"), 0),
        (("spec", "autoscalerOptions", "upscalingMode"), "Fast"),
        (("spec", "workerGroupSpecs", 0, "template", "spec", "containers", 0, "imagePullPolicy"), 3),
    ],
    ids=["typo", "number-start-param", "unknown-upscaling-mode", "wrong-type-in-pod"],
)
def test_crd_validation_catches_mistakes(render: Render, path: tuple[Any, ...], value: Any) -> None:
    cluster = copy.deepcopy(ray_cluster(render))
    node = cluster
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    for kuberay_version in KUBERAY_VERSIONS:
        with pytest.raises(jsonschema.ValidationError):
            validate_against_crd(cluster, kuberay_version)


def test_cluster_has_head_and_cpu_group_by_default(render: Render) -> None:
    cluster = ray_cluster(render)
    assert cluster["apiVersion"] == "ray.io/v1"
    assert cluster["spec"]["rayVersion"] == "2.60.0"
    head = cluster["spec"]["headGroupSpec"]
    ports = {port["name"]: port["containerPort"] for port in only_container(head)["ports"]}
    # The GCS the drivers join and the dashboard; no Ray Client port.
    assert ports == {"gcs-server": 6379, "dashboard": 8265}
    assert set(groups(cluster)) == {"cpu"}
    cpu = only_container(groups(cluster)["cpu"])
    assert "nvidia.com/gpu" not in cpu["resources"].get("limits", {})


def test_gpu_group_requests_gpus_and_runs_the_gpu_image(render: Render) -> None:
    values = {"ray": {"gpuWorkers": {"enabled": True, "gpusPerWorker": 2, "nodeSelector": {"gpu": "a100"}}}}
    cluster = ray_cluster(render, values)
    gpu = groups(cluster)["gpu"]
    container = only_container(gpu)
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 2
    # The chart's CPU/memory limits survive next to the GPU limit.
    assert container["resources"]["limits"]["memory"] == "32Gi"
    assert gpu["rayStartParams"]["num-gpus"] == "2"
    assert container["image"] == "ghcr.io/loraforge/loraforge:0.1.0-gpu"
    assert gpu["template"]["spec"]["nodeSelector"] == {"gpu": "a100"}
    tolerations = gpu["template"]["spec"]["tolerations"]
    assert any(t["key"] == "nvidia.com/gpu" for t in tolerations)
    # Everything else keeps the CPU build.
    for group in (cluster["spec"]["headGroupSpec"], groups(cluster)["cpu"]):
        assert only_container(group)["image"] == "ghcr.io/loraforge/loraforge:0.1.0"


@pytest.mark.parametrize(
    ("image", "cpu", "gpu"),
    [
        ({"tag": "9.9"}, "reg.example/lf:9.9", "reg.example/lf:9.9-gpu"),
        ({"tag": "9.9", "gpuTag": "9.9-cu128"}, "reg.example/lf:9.9", "reg.example/lf:9.9-cu128"),
    ],
    ids=["derived", "own-gpu-tag"],
)
def test_gpu_image_follows_the_image_values(
    render: Render, image: dict[str, str], cpu: str, gpu: str
) -> None:
    values = {"image": {"repository": "reg.example/lf", **image}, **GPU_VALUES}
    cluster = ray_cluster(render, values)
    assert only_container(groups(cluster)["gpu"])["image"] == gpu
    assert only_container(groups(cluster)["cpu"])["image"] == cpu


def test_no_gpu_group_unless_asked_for(render: Render) -> None:
    rendered = render()
    assert "gpu" not in groups(rendered.find("RayCluster", RAY_NAME))
    assert "nvidia.com/gpu" not in rendered.text()


@pytest.mark.parametrize("values", [{}, GPU_VALUES], ids=["cpu", "gpu"])
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


def test_autoscaling_is_on_with_group_bounds_from_values(render: Render) -> None:
    values = {
        "ray": {
            "cpuWorkers": {"minReplicas": 2, "replicas": 3, "maxReplicas": 20},
            "gpuWorkers": {"enabled": True, "minReplicas": 0, "replicas": 0, "maxReplicas": 6},
            "autoscalerOptions": {"idleTimeoutSeconds": 300, "upscalingMode": "Conservative"},
        }
    }
    spec = ray_cluster(render, values)["spec"]
    assert spec["enableInTreeAutoscaling"] is True
    assert spec["autoscalerOptions"]["idleTimeoutSeconds"] == 300
    assert spec["autoscalerOptions"]["upscalingMode"] == "Conservative"
    bounds = {g["groupName"]: (g["minReplicas"], g["maxReplicas"]) for g in spec["workerGroupSpecs"]}
    assert bounds == {"cpu": (2, 20), "gpu": (0, 6)}


def test_autoscaler_gets_the_ray_token_and_its_own_service_account(render: Render) -> None:
    rendered = render({"secrets": {"rayAuthToken": "rt"}})
    spec = rendered.find("RayCluster", RAY_NAME)["spec"]
    env = {item["name"]: item for item in spec["autoscalerOptions"]["env"]}
    assert env["RAY_AUTH_MODE"]["value"] == "token"
    reference = env["RAY_AUTH_TOKEN"]["valueFrom"]["secretKeyRef"]
    assert rendered.secret_data(reference["name"])[reference["key"]] == "rt"
    assert spec["autoscalerOptions"]["securityContext"]["allowPrivilegeEscalation"] is False
    # KubeRay binds its autoscaler Role to a service account it creates for a head that names none; the
    # sidecar needs that account's token.
    head = spec["headGroupSpec"]["template"]["spec"]
    assert "serviceAccountName" not in head
    assert head["automountServiceAccountToken"] is True
    # Worker pods need no Kubernetes API access.
    for group in spec["workerGroupSpecs"]:
        assert group["template"]["spec"]["automountServiceAccountToken"] is False


def test_without_autoscaling_the_head_keeps_the_chart_account(render: Render) -> None:
    spec = ray_cluster(render, {"ray": {"enableInTreeAutoscaling": False}})["spec"]
    assert spec["enableInTreeAutoscaling"] is False
    assert "autoscalerOptions" not in spec
    head = spec["headGroupSpec"]["template"]["spec"]
    assert head["serviceAccountName"] == "lf-loraforge"
    assert head["automountServiceAccountToken"] is False


def test_every_ray_node_gets_settings_token_and_the_models_claim(render: Render) -> None:
    rendered = render({**GPU_VALUES, "secrets": {"rayAuthToken": "rt"}})
    cluster = rendered.find("RayCluster", RAY_NAME)
    for template in rendered.pod_templates(cluster):
        container = template["spec"]["containers"][0]
        env = rendered.env_of(container)
        assert env["RAY_AUTH_MODE"] == "token"
        assert env["RAY_AUTH_TOKEN"] == "rt"
        assert env["LORAFORGE_CATALOG_URL"].startswith("postgresql+psycopg://")
        assert env["LORAFORGE_MODEL_DIR"] == "/models"
        mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
        assert (mounts["models"], mounts["shm"]) == ("/models", "/dev/shm")
        volumes = {v["name"]: v for v in template["spec"]["volumes"]}
        assert volumes["models"]["persistentVolumeClaim"]["claimName"] == "lf-loraforge-models"
        assert volumes["shm"]["emptyDir"]["medium"] == "Memory"


def test_head_keeps_tasks_off_by_default(render: Render) -> None:
    head = ray_cluster(render)["spec"]["headGroupSpec"]
    assert head["rayStartParams"]["num-cpus"] == "0"
    assert head["rayStartParams"]["dashboard-host"] == "0.0.0.0"


def test_ray_auth_can_be_turned_off(render: Render) -> None:
    rendered = render({"ray": {"auth": False}})
    assert "RAY_AUTH_MODE" not in rendered.find("ConfigMap", "lf-loraforge-settings")["data"]
    assert "RAY_AUTH_TOKEN" not in rendered.secret_data(SECRET)
    assert "env" not in rendered.find("RayCluster", RAY_NAME)["spec"]["autoscalerOptions"]
