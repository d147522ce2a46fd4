"""infra/docker/ray-node-entrypoint.sh: join Ray as a zero-resource node, then run the command.

The script runs under /bin/sh (dash, as in the Debian-based image) with a fake `ray` first on PATH that
records its arguments, so no Ray process is started or stopped on this machine.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
SCRIPT = REPO_ROOT / "infra" / "docker" / "ray-node-entrypoint.sh"

# `ray start` fails until the file FAIL_COUNT holds 0, counting down once per call (a head still starting).
FAKE_RAY = """#!/bin/sh
echo "$*" >> "$RAY_LOG"
if [ "$1" = start ]; then
    left=$(cat "$FAIL_COUNT")
    if [ "$left" -gt 0 ]; then
        echo $((left - 1)) > "$FAIL_COUNT"
        echo "ConnectionError: could not reach the GCS" >&2
        exit 1
    fi
fi
exit 0
"""


def run_entrypoint(
    tmp_path: Path, *command: str, address: str | None, failures: int = 0, timeout_s: int = 30
) -> tuple[subprocess.CompletedProcess, list[str]]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    fake = bin_dir / "ray"
    fake.write_text(FAKE_RAY)
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    log, fail_count = tmp_path / "ray.log", tmp_path / "fail-count"
    log.write_text("")
    fail_count.write_text(str(failures))
    # Only the fake ray and the system's tools: the virtualenv's real `ray` must stay out of reach.
    env = {
        "PATH": f"{bin_dir}:/usr/bin:/bin",
        "RAY_LOG": str(log),
        "FAIL_COUNT": str(fail_count),
        "LORAFORGE_RAY_JOIN_TIMEOUT_S": str(timeout_s),
        "LORAFORGE_RAY_JOIN_INTERVAL_S": "0",
    }
    if address is not None:
        env["LORAFORGE_RAY_ADDRESS"] = address
    result = subprocess.run(
        ["/bin/sh", str(SCRIPT), *command], capture_output=True, text=True, env=env, timeout=60
    )
    return result, log.read_text().splitlines()


def test_script_is_executable_posix_sh() -> None:
    assert SCRIPT.read_text().startswith("#!/bin/sh\n")
    assert os.access(SCRIPT, os.X_OK)
    subprocess.run(["/bin/sh", "-n", str(SCRIPT)], check=True)


def test_gcs_address_joins_as_zero_resource_node_then_runs_the_command(tmp_path: Path) -> None:
    result, calls = run_entrypoint(
        tmp_path, "sh", "-c", "echo ran $0 $1; exit 7", "a", "b", address="head:6379"
    )
    assert calls == ["start --address=head:6379 --num-cpus=0 --num-gpus=0 --disable-usage-stats"]
    # The command replaces the script: its output and exit status are the container's.
    assert result.stdout.strip().endswith("ran a b")
    assert result.returncode == 7


def test_retries_while_the_head_starts(tmp_path: Path) -> None:
    result, calls = run_entrypoint(tmp_path, "true", address="head:6379", failures=2)
    assert result.returncode == 0, result.stderr
    starts = [call for call in calls if call.startswith("start ")]
    assert len(starts) == 3
    # Each failed try clears what it may have half-started.
    assert calls.count("stop --force") == 2
    assert "not ready; retrying" in result.stderr


def test_gives_up_loudly_when_the_cluster_never_answers(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    result, calls = run_entrypoint(
        tmp_path, "touch", str(marker), address="head:6379", failures=10_000, timeout_s=1
    )
    assert result.returncode == 1
    assert "could not join the Ray cluster at head:6379" in result.stderr
    assert calls and all(call.startswith(("start ", "stop ")) for call in calls)
    assert not marker.exists()


def test_ray_client_address_is_refused(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    result, calls = run_entrypoint(tmp_path, "touch", str(marker), address="ray://head:10001")
    assert result.returncode == 2
    assert "Ray Client cannot run" in result.stderr
    assert "host:6379" in result.stderr
    assert calls == []
    assert not marker.exists()


@pytest.mark.parametrize("address", [None, ""], ids=["unset", "empty"])
def test_without_an_address_the_command_runs_alone(tmp_path: Path, address: str | None) -> None:
    result, calls = run_entrypoint(tmp_path, "sh", "-c", "echo alone", address=address)
    assert (result.returncode, result.stdout.strip()) == (0, "alone")
    assert calls == []


def test_no_command_is_a_usage_error(tmp_path: Path) -> None:
    result, calls = run_entrypoint(tmp_path, address="head:6379")
    assert result.returncode == 64
    assert "usage" in result.stderr
    assert calls == []


def test_the_flags_it_passes_exist_in_the_pinned_ray() -> None:
    # The real CLI's help only (no node is started): a renamed flag would fail every container start.
    beside_python = Path(sys.executable).with_name("ray")
    ray = str(beside_python) if beside_python.exists() else shutil.which("ray")
    assert ray, "ray is not installed"
    help_text = subprocess.run(
        [ray, "start", "--help"], capture_output=True, text=True, timeout=60, check=True
    ).stdout
    for flag in ("--address", "--num-cpus", "--num-gpus", "--disable-usage-stats"):
        assert flag in help_text
