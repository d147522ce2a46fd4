"""The installed `loraforge search` command, as the issue runs it, on embedded defaults and the fakes."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import run_cli
from tests.support.fake_providers import FakeProvider, provider_env


def test_the_issues_command(tmp_path: Path, fakes: dict[str, FakeProvider]) -> None:
    env = {
        "LORAFORGE_HOME": str(tmp_path / "home"),
        "LORAFORGE_EXECUTOR": "inline",
        **provider_env(*fakes.values()),
    }
    args = ["grace hopper", "--provider", "openverse,wikimedia", "--licence", "cc0,cc-by,cc-by-sa"]
    shown = run_cli("search", *args, "--limit", "200", "--dataset", "hopper", env=env)
    assert shown.returncode == 0, shown.stderr
    for column in (
        "provider",
        "found",
        "new",
        "already",
        "seen",
        "(licence, rating, size)",
        "failed",
        "added",
    ):
        assert column in shown.stdout, shown.stdout
    assert "openverse" in shown.stdout and "wikimedia" in shown.stdout
    assert "10 (10, 0, 0)" in shown.stdout  # Wikimedia's pdm and unknown licences refused
    assert "no more results for this query" in shown.stderr  # both fakes run out before 200

    again = run_cli("search", *args, "--limit", "200", "--dataset", "hopper", "--json", env=env)
    assert again.returncode == 0, again.stderr
    lines = {line["provider"]: line for line in json.loads(again.stdout)["providers"]}
    # Exhausted on the first run: the second asks nothing and adds nothing.
    assert all(line["exhausted"] and line["found"] == 0 and line["added"] == 0 for line in lines.values())

    report = json.loads(run_cli("report", "--dataset", "hopper", "--json", env=env).stdout)
    names = {image["filename"].split("-")[0] for image in report["images"]}
    assert names == {"openverse", "wikimedia"} and len(report["images"]) > 20


def test_bad_input_is_one_line_and_exit_1(tmp_path: Path) -> None:
    env = {"LORAFORGE_HOME": str(tmp_path / "home")}
    wrong = run_cli("search", "x", "--licence", "gpl", "--dataset", "d", env=env)
    assert wrong.returncode == 1 and "unknown licence code(s) gpl" in wrong.stderr
    wrong = run_cli("search", "x", "--rating", "safe-ish", "--dataset", "d", env=env)
    assert wrong.returncode == 1 and "unknown rating(s) safe-ish" in wrong.stderr
    listed = run_cli("search", "--list-providers", "--json", env=env)
    assert listed.returncode == 0
    brave = next(p for p in json.loads(listed.stdout) if p["name"] == "brave")
    assert brave["configured"] is False and "LORAFORGE_BRAVE_API_KEY" in brave["note"]
