"""The API fuzzed from its own OpenAPI document: a bounded schemathesis run, every check, stateful phase too.

It runs against `loraforge serve` in its own process (Postgres + the S3 server, trainings against the fake
Replicate server), as an outside client would see it, and must end with zero failures: no 5xx, only
documented statuses, responses that match their schemas, invalid input refused, valid input accepted.
Every check is on (schemathesis's default); `schemathesis.toml` beside this file names the two exceptions
and why.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.api.test_cli_serve import free_port
from tests.support.fake_replicate import FakeReplicate, running_fake_replicate

TOKEN = "fuzz-token"


def test_schemathesis_finds_no_failure(stack_env: dict[str, str], tmp_path: Path) -> None:
    with running_fake_replicate() as replicate:
        _fuzz(stack_env, tmp_path, replicate)


def _fuzz(stack_env: dict[str, str], tmp_path: Path, replicate: FakeReplicate) -> None:
    port = free_port()
    bin_dir = Path(sys.executable).parent
    exe = shutil.which("loraforge", path=str(bin_dir)) or "loraforge"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LORAFORGE_", "PREFECT_API"))}
    env |= stack_env | {
        "LORAFORGE_API_TOKEN": TOKEN,
        "LORAFORGE_EXECUTOR": "inline",
        "REPLICATE_API_TOKEN": replicate.token,
        "REPLICATE_BASE_URL": replicate.base_url,
        "LORAFORGE_REPLICATE_WEBHOOK_SECRET": replicate.webhook_secret,
    }
    log = open(tmp_path / "serve.log", "w")  # noqa: SIM115 - closed in finally
    server = subprocess.Popen([exe, "serve", "--port", str(port)], env=env, stderr=log, stdout=log)
    api = f"http://127.0.0.1:{port}/api/v1"
    try:
        for _ in range(240):
            try:
                if httpx.get(f"{api}/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                assert server.poll() is None, (tmp_path / "serve.log").read_text()[-3000:]
                time.sleep(0.5)
        auth = {"Authorization": f"Bearer {TOKEN}"}
        workspace = httpx.post(f"{api}/workspaces", json={"name": "fuzz"}, headers=auth).json()
        httpx.post(f"{api}/workspaces/{workspace['id']}/datasets", json={"name": "fuzzed"}, headers=auth)

        fuzz = subprocess.run(
            [
                str(bin_dir / "schemathesis"),
                "--config-file",
                str(Path(__file__).with_name("schemathesis.toml")),
                "run",
                f"{api}/openapi.json",
                "-H",
                f"Authorization: Bearer {TOKEN}",
                "--phases",
                "examples,coverage,fuzzing,stateful",
                "--max-examples",
                "15",
                "--seed",
                "20261128",
                "--workers",
                "1",
                "--no-color",
            ],
            capture_output=True,
            text=True,
            timeout=900,
            cwd=tmp_path,
        )

        report = fuzz.stdout[-6000:] + fuzz.stderr[-2000:]
        print(fuzz.stdout[-2500:])  # schemathesis's summary, shown with `pytest -s`
        assert fuzz.returncode == 0, report
        assert (
            "Test cases:" in fuzz.stdout
            and " 0 failures" not in fuzz.stdout
            or "No issues found" in fuzz.stdout
        )
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()
