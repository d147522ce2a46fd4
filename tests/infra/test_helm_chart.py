"""helm/loraforge: lint and render offline (helm-python-sdk), validate against Kubernetes schemas."""

from __future__ import annotations

import asyncio
import datetime
import re
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import helm_python
import kubernetes_validate
import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
CHART_DIR = REPO_ROOT / "helm" / "loraforge"
DEPLOY_DOC = REPO_ROOT / "docs" / "deploy.md"
# The oldest Kubernetes the chart accepts (Chart.yaml kubeVersion) and the newest kubernetes-validate ships.
KUBE_VERSIONS = ("1.25.0", "1.37.0")
PREFIX = "lf-loraforge"
RAY_HEAD_GCS = f"{PREFIX}-ray-head-svc:6379"
RAY_NODE_ENTRYPOINT = "/usr/local/bin/ray-node-entrypoint"
GPU_VALUES = {"ray": {"gpuWorkers": {"enabled": True, "gpusPerWorker": 2}}}
EXTERNAL_VALUES = {
    "postgres": {"bundled": False, "url": "postgresql+psycopg://lf:pw@db.example:5432/lf"},
    "minio": {"bundled": False},
    "objectStorage": {"endpoint": "s3.example:443", "secure": True, "accessKey": "ak", "secretKey": "sk"},
    "prefect": {"bundled": False, "apiUrl": "http://prefect.example:4200/api"},
    "ray": {"enabled": False, "address": "ray.example:6379"},
}
EVERYTHING_VALUES = {
    **GPU_VALUES,
    "ingress": {"enabled": True, "className": "nginx", "tls": [{"secretName": "t", "hosts": ["a.example"]}]},
    "models": {"storageClass": "nfs", "readOnly": True},
    "api": {"podDisruptionBudget": {"minAvailable": 1}},
    "worker": {"limit": 4},
}
EXISTING_SECRET_VALUES = {"secrets": {"existingSecret": "mine"}}
NO_AUTOSCALING_VALUES = {"ray": {"enableInTreeAutoscaling": False}}
VARIANTS = {
    "default": {},
    "everything": EVERYTHING_VALUES,
    "external": EXTERNAL_VALUES,
    "existing-secret": EXISTING_SECRET_VALUES,
    "no-autoscaling": NO_AUTOSCALING_VALUES,
}

Render = Callable[..., Any]


def container(manifest: dict[str, Any], name: str) -> dict[str, Any]:
    containers = manifest["spec"]["template"]["spec"]["containers"]
    return next(c for c in containers if c["name"] == name)


def all_containers(template: dict[str, Any]) -> list[dict[str, Any]]:
    spec = template["spec"]
    return [*spec.get("initContainers", []), *spec["containers"]]


@pytest.mark.parametrize("values", VARIANTS.values(), ids=VARIANTS.keys())
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
            ("PodDisruptionBudget", "-api"),
            ("PersistentVolumeClaim", "-models"),
        ]
    }
    assert expected <= names
    assert f"Ingress/{PREFIX}" not in names


@pytest.mark.parametrize("kube_version", KUBE_VERSIONS)
@pytest.mark.parametrize("values", VARIANTS.values(), ids=VARIANTS.keys())
def test_every_manifest_validates_against_kubernetes_schema(
    render: Render, values: dict[str, Any], kube_version: str
) -> None:
    rendered = render(values)
    checked = 0
    for manifest in rendered.manifests:
        if manifest["apiVersion"] == "ray.io/v1":
            # A custom resource: test_raycluster.py validates it against KubeRay's CRD schema.
            continue
        kubernetes_validate.validate(manifest, kube_version, strict=True)
        checked += 1
    assert checked == len(rendered.manifests) - len(rendered.of_kind("RayCluster")) > 5


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
    assert env["LORAFORGE_RAY_ADDRESS"] == RAY_HEAD_GCS
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
    assert env["LORAFORGE_RAY_ADDRESS"] == "ray.example:6379"
    assert env["PREFECT_API_URL"] == "http://prefect.example:4200/api"


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"postgres": {"bundled": False}}, "postgres.url"),
        ({"minio": {"bundled": False}}, "objectStorage.endpoint"),
        ({"prefect": {"bundled": False}}, "prefect.apiUrl"),
        ({"ray": {"enabled": False, "address": "ray://ray.example:10001"}}, "ray.address"),
    ],
)
def test_missing_external_address_fails_with_its_name(
    render: Render, values: dict[str, Any], message: str
) -> None:
    with pytest.raises(helm_python.HelmError, match=message.replace(".", r"\.")):
        render(values)


def secret_references(rendered: Any) -> set[tuple[str, str]]:
    """(secret, key) of every secretKeyRef in the render: containers, init containers, the Ray autoscaler."""
    found: set[tuple[str, str]] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if "secretKeyRef" in node:
                found.add((node["secretKeyRef"]["name"], node["secretKeyRef"]["key"]))
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(rendered.manifests)
    return found


# What an existing Secret must hold with everything bundled and Ray auth on (values.yaml, docs/deploy.md).
EXISTING_SECRET_KEYS = {
    "LORAFORGE_CATALOG_URL",
    "LORAFORGE_S3_ACCESS_KEY",
    "LORAFORGE_S3_SECRET_KEY",
    "LORAFORGE_API_TOKEN",
    "RAY_AUTH_TOKEN",
    "POSTGRES_PASSWORD",
    "PREFECT_API_DATABASE_CONNECTION_URL",
}


def test_existing_secret_is_referenced_not_rendered(render: Render) -> None:
    rendered = render(EXISTING_SECRET_VALUES)
    assert rendered.of_kind("Secret") == []
    references = secret_references(rendered)
    # Every pod, init container, hook Job and the autoscaler read the named Secret, and only it.
    assert {name for name, _ in references} == {"mine"}
    assert {key for _, key in references} == EXISTING_SECRET_KEYS
    pod_templates = rendered.all_pod_templates()
    for template in pod_templates:
        for item in (e for c in all_containers(template) for e in c.get("env", [])):
            if "valueFrom" in item and "secretKeyRef" in item["valueFrom"]:
                assert item["valueFrom"]["secretKeyRef"]["name"] == "mine"
    assert "Secret mine" in rendered.notes


def test_existing_secret_keys_are_documented() -> None:
    values_comment = (CHART_DIR / "values.yaml").read_text()
    docs = DEPLOY_DOC.read_text()
    for key in EXISTING_SECRET_KEYS:
        assert key in values_comment, key
        assert f"`{key}`" in docs, key


def test_generated_secrets_survive_the_next_render(
    render: Render, render_in_cluster: Render, kube_api: Any
) -> None:
    first = render_in_cluster(upgrade=False)
    generated = first.secret_data(PREFIX)
    # What `helm install` left in the cluster; the next render's `lookup` reads it back.
    kube_api.secrets[PREFIX] = first.find("Secret", PREFIX)
    second = render_in_cluster({"secrets": {"apiToken": "chosen"}})
    assert f"/api/v1/namespaces/ml/secrets/{PREFIX}" in kube_api.requests
    kept = second.secret_data(PREFIX)
    assert kept["LORAFORGE_API_TOKEN"] == "chosen"
    for key in ("POSTGRES_PASSWORD", "LORAFORGE_S3_SECRET_KEY", "RAY_AUTH_TOKEN", "LORAFORGE_CATALOG_URL"):
        assert kept[key] == generated[key], key
    assert second.secret_data(PREFIX) == render_in_cluster({"secrets": {"apiToken": "chosen"}}).secret_data(
        PREFIX
    )
    # Without a cluster to read from, each render generates new values: the equality above is lookup's doing.
    assert render().secret_data(PREFIX)["RAY_AUTH_TOKEN"] != generated["RAY_AUTH_TOKEN"]
    # The Secret outlives `helm uninstall`, like the volumes whose passwords it holds.
    assert first.find("Secret", PREFIX)["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"


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
    assert worker["args"] == ["loraforge", "worker"]
    limited = container(render({"worker": {"limit": 3}}).find("Deployment", f"{PREFIX}-worker"), "worker")
    assert limited["args"] == ["loraforge", "worker", "--limit", "3"]


@pytest.mark.parametrize("values", [{}, EXTERNAL_VALUES], ids=["bundled-ray", "external-ray"])
def test_api_and_worker_join_ray_as_drivers(render: Render, values: dict[str, Any]) -> None:
    rendered = render({**values, "secrets": {"rayAuthToken": "rt"}})
    expected_address = RAY_HEAD_GCS if not values else "ray.example:6379"
    drivers = {
        "api": container(rendered.find("Deployment", f"{PREFIX}-api"), "api"),
        "worker": container(rendered.find("Deployment", f"{PREFIX}-worker"), "worker"),
    }
    for name, driver in drivers.items():
        # tini stays PID 1 and reaps the raylet's processes; the wrapper joins, then runs the args.
        assert driver["command"] == ["/usr/bin/tini", "--", RAY_NODE_ENTRYPOINT], name
        env = rendered.env_of(driver)
        assert env["LORAFORGE_RAY_ADDRESS"] == expected_address
        assert (env["RAY_AUTH_MODE"], env["RAY_AUTH_TOKEN"]) == ("token", "rt")
        assert {"name": "shm", "mountPath": "/dev/shm"} in driver["volumeMounts"]
        pod = rendered.find("Deployment", f"{PREFIX}-{name}")["spec"]["template"]["spec"]
        shm = next(v for v in pod["volumes"] if v["name"] == "shm")
        assert shm["emptyDir"]["medium"] == "Memory"
    assert drivers["api"]["args"] == ["loraforge", "serve", "--host", "0.0.0.0", "--port", "8000"]
    # The dashboard is no driver: it reaches the data through the API only.
    ui = container(rendered.find("Deployment", f"{PREFIX}-ui"), "ui")
    assert RAY_NODE_ENTRYPOINT not in ui.get("command", [])


@pytest.mark.parametrize("values", VARIANTS.values(), ids=VARIANTS.keys())
def test_no_ray_client_address_anywhere(render: Render, values: dict[str, Any]) -> None:
    text = render(values).text()
    assert "ray://" not in text
    assert "10001" not in text


def test_values_name_no_ray_client_address() -> None:
    assert "ray://" not in (CHART_DIR / "values.yaml").read_text()


def test_migrations_run_before_api_and_worker_start(render: Render) -> None:
    rendered = render()
    for name in ("api", "worker"):
        pod = rendered.find("Deployment", f"{PREFIX}-{name}")["spec"]["template"]["spec"]
        (init,) = pod["initContainers"]
        assert init["command"] == ["sh", "-c"]
        assert "until loraforge db upgrade; do" in init["args"][0]
        env = rendered.env_of(init)
        assert env["LORAFORGE_CATALOG_URL"].startswith("postgresql+psycopg://")
    disabled = render({"migrations": {"enabled": False}})
    assert f"Job/{PREFIX}-migrate" not in disabled.names()
    for name in ("api", "worker"):
        assert (
            "initContainers"
            not in disabled.find("Deployment", f"{PREFIX}-{name}")["spec"]["template"]["spec"]
        )


def test_migration_job_is_a_pre_upgrade_hook(render: Render) -> None:
    job = render().find("Job", f"{PREFIX}-migrate")
    annotations = job["metadata"]["annotations"]
    # Only pre-upgrade: a pre-install hook would run before the chart's Postgres exists (migrate-job.yaml).
    assert annotations["helm.sh/hook"] == "pre-upgrade"
    assert set(annotations["helm.sh/hook-delete-policy"].split(",")) == {
        "before-hook-creation",
        "hook-succeeded",
    }
    migrate = job["spec"]["template"]["spec"]["containers"][0]
    assert "until loraforge db upgrade; do" in migrate["args"][0]
    assert any(e["name"] == "LORAFORGE_CATALOG_URL" for e in migrate["env"])
    assert f"Job/{PREFIX}-migrate" not in render({"migrations": {"upgradeHook": False}}).names()


# `loraforge db upgrade` fails until the file FAIL_COUNT holds 0, counting down once per call.
FAKE_LORAFORGE = """#!/bin/sh
echo "$*" >> "$CALLS"
left=$(cat "$FAIL_COUNT")
if [ "$left" -gt 0 ]; then echo $((left - 1)) > "$FAIL_COUNT"; exit 2; fi
"""


def run_migrate_script(
    render: Render, tmp_path: Path, failures: int, timeout_s: int
) -> tuple[Any, list[str]]:
    values = {"migrations": {"waitTimeoutSeconds": timeout_s, "retryIntervalSeconds": 0}}
    pod = render(values).find("Deployment", f"{PREFIX}-api")["spec"]["template"]["spec"]
    script = pod["initContainers"][0]["args"][0]
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "loraforge").write_text(FAKE_LORAFORGE)
    (bin_dir / "loraforge").chmod(0o755)
    calls, fail_count = tmp_path / "calls", tmp_path / "fail-count"
    calls.write_text("")
    fail_count.write_text(str(failures))
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "CALLS": str(calls), "FAIL_COUNT": str(fail_count)}
    result = subprocess.run(["/bin/sh", "-c", script], capture_output=True, text=True, env=env, timeout=60)
    return result, calls.read_text().splitlines()


def test_migrate_script_retries_until_postgres_answers(render: Render, tmp_path: Path) -> None:
    result, calls = run_migrate_script(render, tmp_path, failures=3, timeout_s=60)
    assert result.returncode == 0, result.stderr
    assert calls == ["db upgrade"] * 4
    assert "is Postgres still starting?" in result.stderr


def test_migrate_script_gives_up_after_its_timeout(render: Render, tmp_path: Path) -> None:
    result, calls = run_migrate_script(render, tmp_path, failures=10**6, timeout_s=1)
    assert result.returncode == 1
    assert "did not succeed within 1s" in result.stderr
    assert len(calls) >= 1


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


def models_volumes(rendered: Any) -> list[dict[str, Any]]:
    """The `models` volume of every pod that mounts /models."""
    found = []
    for template in rendered.all_pod_templates():
        mounts = [m for c in template["spec"]["containers"] for m in c.get("volumeMounts", [])]
        if any(m["mountPath"] == "/models" for m in mounts):
            found.append(next(v for v in template["spec"]["volumes"] if v["name"] == "models"))
    return found


def test_models_live_on_one_shared_claim(render: Render) -> None:
    rendered = render(GPU_VALUES)
    claim = rendered.find("PersistentVolumeClaim", f"{PREFIX}-models")
    assert claim["spec"]["accessModes"] == ["ReadWriteMany"]
    assert claim["spec"]["resources"]["requests"]["storage"] == "50Gi"
    assert claim["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    volumes = models_volumes(rendered)
    # API, worker, the Ray head and both worker groups: never an emptyDir.
    assert len(volumes) == 5
    assert all(
        v == {"name": "models", "persistentVolumeClaim": {"claimName": f"{PREFIX}-models"}} for v in volumes
    )


def test_models_claim_size_and_class_follow_values(render: Render) -> None:
    claim = render({"models": {"size": "200Gi", "storageClass": "nfs-client"}}).find(
        "PersistentVolumeClaim", f"{PREFIX}-models"
    )
    assert (claim["spec"]["storageClassName"], claim["spec"]["resources"]["requests"]["storage"]) == (
        "nfs-client",
        "200Gi",
    )


def test_models_volume_uses_existing_claim(render: Render) -> None:
    rendered = render({"models": {"existingClaim": "weights", "readOnly": True}})
    assert rendered.of_kind("PersistentVolumeClaim") == []
    volumes = models_volumes(rendered)
    assert volumes and all(
        v["persistentVolumeClaim"] == {"claimName": "weights", "readOnly": True} for v in volumes
    )
    worker = container(rendered.find("Deployment", f"{PREFIX}-worker"), "worker")
    assert {"name": "models", "mountPath": "/models", "readOnly": True} in worker["volumeMounts"]


def test_api_disruption_budget(render: Render) -> None:
    rendered = render()
    budget = rendered.find("PodDisruptionBudget", f"{PREFIX}-api")
    # maxUnavailable, not minAvailable: it never blocks a node drain, whatever the replica count.
    assert budget["spec"]["maxUnavailable"] == 1
    assert "minAvailable" not in budget["spec"]
    pod_labels = rendered.find("Deployment", f"{PREFIX}-api")["spec"]["template"]["metadata"]["labels"]
    assert budget["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    assert budget["spec"]["selector"]["matchLabels"]["app.kubernetes.io/component"] == "api"
    other = render({"api": {"podDisruptionBudget": {"minAvailable": 2}}}).find(
        "PodDisruptionBudget", f"{PREFIX}-api"
    )
    assert other["spec"] == {**other["spec"], "minAvailable": 2} and "maxUnavailable" not in other["spec"]
    off = render({"api": {"podDisruptionBudget": {"enabled": False}}})
    assert off.of_kind("PodDisruptionBudget") == []


def test_worker_probes_ask_the_prefect_runner(render: Render) -> None:
    rendered = render({"worker": {"healthPort": 9090}})
    worker = container(rendered.find("Deployment", f"{PREFIX}-worker"), "worker")
    env = rendered.env_of(worker)
    assert (env["PREFECT_RUNNER_SERVER_ENABLE"], env["PREFECT_RUNNER_SERVER_HOST"]) == ("true", "127.0.0.1")
    assert env["PREFECT_RUNNER_SERVER_PORT"] == "9090"
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        command = worker[probe]["exec"]["command"]
        assert command[:2] == ["python", "-c"]
        assert "urlopen('http://127.0.0.1:9090/health'" in command[2]
    # Joining Ray may take up to LORAFORGE_RAY_JOIN_TIMEOUT_S (300 s): the startup probe allows longer.
    startup = worker["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] > 300
    # The API waits the same way before its liveness probe starts.
    api = container(rendered.find("Deployment", f"{PREFIX}-api"), "api")
    assert api["startupProbe"]["periodSeconds"] * api["startupProbe"]["failureThreshold"] > 300


def test_prefect_runner_health_route_behaves_as_the_probes_expect() -> None:
    from fastapi.testclient import TestClient
    from prefect.runner import Runner
    from prefect.runner.server import build_server
    from prefect.settings import (
        PREFECT_RUNNER_SERVER_ENABLE,
        PREFECT_RUNNER_SERVER_HOST,
        PREFECT_RUNNER_SERVER_PORT,
    )

    # The variables the chart and compose set are Prefect's names for these settings.
    names = {
        s.name for s in (PREFECT_RUNNER_SERVER_ENABLE, PREFECT_RUNNER_SERVER_HOST, PREFECT_RUNNER_SERVER_PORT)
    }
    assert names == {
        "PREFECT_RUNNER_SERVER_ENABLE",
        "PREFECT_RUNNER_SERVER_HOST",
        "PREFECT_RUNNER_SERVER_PORT",
    }
    runner = Runner()
    client = TestClient(asyncio.run(build_server(runner)), raise_server_exceptions=False)
    # Before the first poll it is not healthy (the startup probe waits for that).
    assert client.get("/health").status_code != 200
    runner.last_polled = datetime.datetime.now(datetime.UTC)
    assert client.get("/health").status_code == 200
    runner.last_polled -= datetime.timedelta(minutes=10)
    assert client.get("/health").status_code == 503


def chart_images(render: Render) -> tuple[str, str]:
    cluster = render(GPU_VALUES).find("RayCluster", f"{PREFIX}-ray")
    groups = {
        g["groupName"]: g["template"]["spec"]["containers"][0]["image"]
        for g in cluster["spec"]["workerGroupSpecs"]
    }
    return groups["cpu"], groups["gpu"]


def test_default_images_are_the_documented_builds(render: Render) -> None:
    cpu, gpu = chart_images(render)
    app_version = yaml.safe_load((CHART_DIR / "Chart.yaml").read_text())["appVersion"]
    assert (cpu, gpu) == (
        f"ghcr.io/loraforge/loraforge:{app_version}",
        f"ghcr.io/loraforge/loraforge:{app_version}-gpu",
    )
    # docs/deploy.md builds and pushes exactly these two, the GPU one as TORCH_VARIANT=gpu.
    commands = " ".join(DEPLOY_DOC.read_text().replace("\\\n", " ").split())
    builds = re.findall(
        r"docker build (-f infra/docker/Dockerfile (?:--build-arg \S+ )?)-t (\S+) \.", commands
    )
    built = {tag: options for options, tag in builds}
    assert cpu in built and "TORCH_VARIANT" not in built[cpu]
    assert gpu in built and "--build-arg TORCH_VARIANT=gpu" in built[gpu]
    for image in (cpu, gpu):
        assert f"docker push {image}" in commands


def test_bundled_postgres_gets_the_repo_init_script(render: Render) -> None:
    init = render().find("ConfigMap", f"{PREFIX}-postgres-init")["data"]["10-loraforge.sql"]
    expected = (REPO_ROOT / "infra" / "postgres" / "init.sql").read_text()
    assert init.strip() == expected.strip()
    assert (CHART_DIR / "files" / "postgres-init.sql").read_text() == expected


def test_notes_explain_access(render: Render) -> None:
    notes = render(GPU_VALUES).notes
    assert f"port-forward svc/{PREFIX}-ui" in notes
    assert "nvidia.com/gpu" in notes
    assert RAY_HEAD_GCS in notes
    assert f"claim {PREFIX}-models" in notes
