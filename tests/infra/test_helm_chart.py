"""helm/loraforge: lint and render offline (helm-python-sdk), validate against Kubernetes schemas."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import helm_python
import kubernetes_validate
import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
CHART_DIR = REPO_ROOT / "helm" / "loraforge"
# The oldest Kubernetes the chart accepts (Chart.yaml kubeVersion) and the newest kubernetes-validate ships.
KUBE_VERSIONS = ("1.25.0", "1.37.0")
PREFIX = "lf-loraforge"
GPU_VALUES = {"ray": {"gpuWorkers": {"enabled": True, "gpusPerWorker": 2}}}
EXTERNAL_VALUES = {
    "postgres": {"bundled": False, "url": "postgresql+psycopg://lf:pw@db.example:5432/lf"},
    "minio": {"bundled": False},
    "objectStorage": {"endpoint": "s3.example:443", "secure": True, "accessKey": "ak", "secretKey": "sk"},
    "prefect": {"bundled": False, "apiUrl": "http://prefect.example:4200/api"},
    "ray": {"enabled": False, "address": "ray://ray.example:10001"},
}
EVERYTHING_VALUES = {
    **GPU_VALUES,
    "ingress": {"enabled": True, "className": "nginx", "tls": [{"secretName": "t", "hosts": ["a.example"]}]},
    "models": {"persistence": {"enabled": True}},
}

Render = Callable[..., Any]


def container(manifest: dict[str, Any], name: str) -> dict[str, Any]:
    containers = manifest["spec"]["template"]["spec"]["containers"]
    return next(c for c in containers if c["name"] == name)


@pytest.mark.parametrize("values", [{}, GPU_VALUES, EXTERNAL_VALUES], ids=["default", "gpu", "external"])
def test_chart_lints_clean(values: dict[str, Any]) -> None:
    report = helm_python.lint(CHART_DIR, values, strict=True, kube_version="v1.30.0")
    assert report["errors"] == []
    assert [m for m in report["messages"] if m["severity"] >= 2] == []


def test_default_render_has_every_component(render: Render) -> None:
    names = render().names()
    expected = {
        f"{kind}/{PREFIX}{suffix}"
        for kind, suffix in [
            ("Deployment", "-api"),
            ("Service", "-api"),
            ("Deployment", "-ui"),
            ("Service", "-ui"),
            ("Deployment", "-worker"),
            ("Job", "-migrate"),
            ("ConfigMap", "-settings"),
            ("Secret", ""),
            ("RayCluster", "-ray"),
            ("StatefulSet", "-postgres"),
            ("StatefulSet", "-minio"),
            ("Job", "-minio-bucket"),
            ("Deployment", "-prefect"),
            ("ServiceAccount", ""),
        ]
    }
    assert expected <= names
    assert f"Ingress/{PREFIX}" not in names


@pytest.mark.parametrize("kube_version", KUBE_VERSIONS)
@pytest.mark.parametrize(
    "values", [{}, EVERYTHING_VALUES, EXTERNAL_VALUES], ids=["default", "everything", "external"]
)
def test_every_manifest_validates_against_kubernetes_schema(
    render: Render, values: dict[str, Any], kube_version: str
) -> None:
    rendered = render(values)
    checked = 0
    for manifest in rendered.manifests:
        if manifest["apiVersion"] == "ray.io/v1":
            # No schema ships for custom resources: validate each embedded pod template as a PodTemplate.
            for template in rendered.pod_templates(manifest):
                pod_template = {"apiVersion": "v1", "kind": "PodTemplate", "metadata": {"name": "t"}}
                pod_template["template"] = template
                kubernetes_validate.validate(pod_template, kube_version, strict=True)
                checked += 1
            continue
        kubernetes_validate.validate(manifest, kube_version, strict=True)
        checked += 1
    # Every object was checked, each RayCluster once per pod template.
    assert checked >= len(rendered.manifests) > 5


def test_validator_rejects_a_broken_manifest(render: Render) -> None:
    api = render().find("Deployment", f"{PREFIX}-api")
    container(api, "api")["ports"][0]["containerPort"] = "eight thousand"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(api, KUBE_VERSIONS[-1], strict=True)


def test_api_gets_catalog_url_and_settings(render: Render) -> None:
    rendered = render({"postgres": {"password": "pg-pw"}, "secrets": {"apiToken": "tok"}})
    env = rendered.env_of(container(rendered.find("Deployment", f"{PREFIX}-api"), "api"))
    assert (
        env["LORAFORGE_CATALOG_URL"]
        == f"postgresql+psycopg://loraforge:pg-pw@{PREFIX}-postgres:5432/loraforge"
    )
    assert env["LORAFORGE_STORAGE_URL"] == "s3://loraforge"
    assert env["LORAFORGE_S3_ENDPOINT"] == f"{PREFIX}-minio:9000"
    assert env["LORAFORGE_S3_SECURE"] == "false"
    assert env["LORAFORGE_RAY_ADDRESS"] == f"ray://{PREFIX}-ray-head-svc:10001"
    assert env["LORAFORGE_PREFECT_API_URL"] == env["PREFECT_API_URL"] == f"http://{PREFIX}-prefect:4200/api"
    assert env["LORAFORGE_MODEL_DIR"] == "/models"
    assert env["LORAFORGE_API_TOKEN"] == "tok"


def test_external_services_replace_bundled_ones(render: Render) -> None:
    rendered = render(EXTERNAL_VALUES)
    kinds = {name.split("/")[0] for name in rendered.names()}
    assert "StatefulSet" not in kinds and "RayCluster" not in kinds
    assert f"Deployment/{PREFIX}-prefect" not in rendered.names()
    env = rendered.env_of(container(rendered.find("Deployment", f"{PREFIX}-worker"), "worker"))
    assert env["LORAFORGE_CATALOG_URL"] == "postgresql+psycopg://lf:pw@db.example:5432/lf"
    assert (env["LORAFORGE_S3_ENDPOINT"], env["LORAFORGE_S3_SECURE"]) == ("s3.example:443", "true")
    assert (env["LORAFORGE_S3_ACCESS_KEY"], env["LORAFORGE_S3_SECRET_KEY"]) == ("ak", "sk")
    assert env["LORAFORGE_RAY_ADDRESS"] == "ray://ray.example:10001"
    assert env["PREFECT_API_URL"] == "http://prefect.example:4200/api"


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"postgres": {"bundled": False}}, "postgres.url"),
        ({"minio": {"bundled": False}}, "objectStorage.endpoint"),
        ({"prefect": {"bundled": False}}, "prefect.apiUrl"),
    ],
)
def test_missing_external_address_fails_with_its_name(
    render: Render, values: dict[str, Any], message: str
) -> None:
    with pytest.raises(helm_python.HelmError, match=message.replace(".", r"\.")):
        render(values)


def test_existing_secret_is_referenced_not_rendered(render: Render) -> None:
    rendered = render({"secrets": {"existingSecret": "mine"}})
    assert rendered.of_kind("Secret") == []
    api = container(rendered.find("Deployment", f"{PREFIX}-api"), "api")
    refs = {e["valueFrom"]["secretKeyRef"]["name"] for e in api["env"] if "valueFrom" in e}
    assert refs == {"mine"}


def test_dashboard_points_at_api_service(render: Render) -> None:
    rendered = render({"secrets": {"apiToken": "tok"}})
    ui = container(rendered.find("Deployment", f"{PREFIX}-ui"), "ui")
    env = rendered.env_of(ui)
    assert env == {"LORAFORGE_API_URL": f"http://{PREFIX}-api:8000", "LORAFORGE_API_TOKEN": "tok"}
    assert "services/ui/app.py" in ui["command"]


def test_replicas_resources_and_image_follow_values(render: Render) -> None:
    rendered = render(
        {
            "image": {"repository": "registry.example/lf", "tag": "9.9"},
            "api": {"replicas": 3, "resources": {"limits": {"cpu": "3"}}},
            "ui": {"replicas": 2},
            "worker": {"replicas": 4},
        }
    )
    api = rendered.find("Deployment", f"{PREFIX}-api")
    assert api["spec"]["replicas"] == 3
    assert container(api, "api")["image"] == "registry.example/lf:9.9"
    assert container(api, "api")["resources"]["limits"]["cpu"] == "3"
    assert rendered.find("Deployment", f"{PREFIX}-ui")["spec"]["replicas"] == 2
    assert rendered.find("Deployment", f"{PREFIX}-worker")["spec"]["replicas"] == 4


def test_worker_serves_flows(render: Render) -> None:
    worker = container(render().find("Deployment", f"{PREFIX}-worker"), "worker")
    assert worker["command"] == ["loraforge", "worker"]


def test_migration_job_is_a_hook_running_db_upgrade(render: Render) -> None:
    job = render().find("Job", f"{PREFIX}-migrate")
    hooks = set(job["metadata"]["annotations"]["helm.sh/hook"].split(","))
    assert hooks == {"post-install", "pre-upgrade"}
    migrate = job["spec"]["template"]["spec"]["containers"][0]
    assert migrate["command"] == ["loraforge", "db", "upgrade"]
    assert any(e["name"] == "LORAFORGE_CATALOG_URL" for e in migrate["env"])
    assert f"Job/{PREFIX}-migrate" not in render({"migrations": {"enabled": False}}).names()


def test_app_pods_run_as_non_root(render: Render) -> None:
    rendered = render(GPU_VALUES)
    workloads = [rendered.find("Deployment", f"{PREFIX}-{name}") for name in ("api", "ui", "worker")]
    for manifest in [*workloads, rendered.find("RayCluster", f"{PREFIX}-ray")]:
        for template in rendered.pod_templates(manifest):
            assert template["spec"]["securityContext"]["runAsNonRoot"] is True


def test_ingress_routes_api_and_dashboard(render: Render) -> None:
    ingress = render({"ingress": {"enabled": True, "host": "lf.example"}}).find("Ingress", PREFIX)
    rule = ingress["spec"]["rules"][0]
    assert rule["host"] == "lf.example"
    backends = {p["path"]: p["backend"]["service"]["name"] for p in rule["http"]["paths"]}
    assert backends == {"/api": f"{PREFIX}-api", "/": f"{PREFIX}-ui"}


def test_models_volume_uses_existing_claim(render: Render) -> None:
    rendered = render({"models": {"existingClaim": "weights"}})
    volumes = rendered.find("Deployment", f"{PREFIX}-worker")["spec"]["template"]["spec"]["volumes"]
    assert {"name": "models", "persistentVolumeClaim": {"claimName": "weights"}} in volumes
    assert rendered.of_kind("PersistentVolumeClaim") == []


def test_bundled_postgres_gets_the_repo_init_script(render: Render) -> None:
    init = render().find("ConfigMap", f"{PREFIX}-postgres-init")["data"]["10-loraforge.sql"]
    expected = (REPO_ROOT / "infra" / "postgres" / "init.sql").read_text()
    assert init.strip() == expected.strip()
    assert (CHART_DIR / "files" / "postgres-init.sql").read_text() == expected


def test_notes_explain_access(render: Render) -> None:
    notes = render(GPU_VALUES).notes
    assert f"port-forward svc/{PREFIX}-ui" in notes
    assert "nvidia.com/gpu" in notes
