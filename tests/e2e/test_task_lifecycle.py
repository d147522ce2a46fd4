"""A run killed with SIGKILL is marked CRASHED (its heartbeat stops), with the reason; its dataset is free."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import select

from loraforge import tasks
from loraforge.catalog.models import Task
from loraforge.stages.context import open_context
from tests.support.images import jpeg_bytes


def test_a_killed_run_is_marked_crashed_and_frees_the_dataset(
    embedded_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "photos"
    folder.mkdir()
    for index in range(120):
        (folder / f"p{index:03d}.jpg").write_bytes(jpeg_bytes(160, 120, seed=index))
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("LORAFORGE_")},
        "LORAFORGE_HOME": str(embedded_env),
        "LORAFORGE_EXECUTOR": "inline",
        "LORAFORGE_TASK_HEARTBEAT_S": "0.5",
        "LORAFORGE_TASK_STALE_AFTER_S": "3",
    }
    exe = str(Path(sys.executable).parent / "loraforge")
    process = subprocess.Popen(
        [exe, "ingest", str(folder), "--dataset", "alice", "--shard-size", "5", "--json"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    monkeypatch.setenv("LORAFORGE_TASK_STALE_AFTER_S", "3")
    from loraforge.config import get_settings

    get_settings.cache_clear()
    ctx = open_context()
    try:
        task_id = _wait_for_running(ctx, deadline_s=120)
        os.killpg(
            process.pid, signal.SIGKILL
        )  # the CLI and everything it started, with no chance to clean up
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    with ctx.catalog.session() as session:
        task = tasks.get_task(session, task_id)
        assert task.status == "RUNNING"  # nobody said otherwise yet
        # On the host that ran it, the dead owner process gives it away at once.
        assert task.owner and task.owner.endswith(f":{process.pid}")
        task.owner = "another-host:1"  # as if it had run on another machine: only the heartbeat can tell
    with ctx.catalog.session() as session:
        assert tasks.reap_dead_owners(session) == []
    time.sleep(4)
    listed = subprocess.run(
        [exe, "tasks", "list", "--dataset", "alice", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert listed.returncode == 0, listed.stderr
    assert [row["status"] for row in json.loads(listed.stdout) if row["id"] == task_id] == ["CRASHED"]
    with ctx.catalog.session() as session:
        task = tasks.get_task(session, task_id)
        assert task.status == "CRASHED" and "heartbeat" in (task.error or "")
        assert task.finished_at is not None
        # The dataset is free again: a new run is accepted.
        again = tasks.create_task(session, kind="curate", dataset_id=task.dataset_id)
        assert again.status == "PENDING"


def _wait_for_running(ctx, *, deadline_s: float) -> str:  # type: ignore[no-untyped-def]
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        with ctx.catalog.session() as session:
            row = session.scalars(select(Task).where(Task.kind == "ingest", Task.status == "RUNNING")).first()
            if row is not None and row.done > 0:
                return row.id
        time.sleep(0.1)
    raise AssertionError("the ingest run never started")


def test_a_dead_owner_on_this_host_is_reaped_at_once(embedded_env: Path) -> None:
    ctx = open_context()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    from loraforge.stages.datasets import ensure_dataset

    with ctx.catalog.session() as session:
        dataset_id = ensure_dataset(session, "bob").id
        task = tasks.create_task(session, kind="ingest", dataset_id=dataset_id)
        tasks.start_task(session, task.id)
        task.owner = f"{tasks.this_process().rpartition(':')[0]}:{dead.pid}"
    with ctx.catalog.session() as session:
        again = tasks.create_task(
            session, kind="ingest", dataset_id=dataset_id
        )  # not refused: the owner is gone
        crashed = tasks.get_task(session, task.id)
        assert crashed.status == "CRASHED" and "is gone" in (crashed.error or "")
        assert again.status == "PENDING"


def test_a_terminated_run_is_marked_crashed_at_once(embedded_env: Path, tmp_path: Path) -> None:
    folder = tmp_path / "photos"
    folder.mkdir()
    for index in range(120):
        (folder / f"p{index:03d}.jpg").write_bytes(jpeg_bytes(160, 120, seed=index))
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("LORAFORGE_")},
        "LORAFORGE_HOME": str(embedded_env),
        "LORAFORGE_EXECUTOR": "inline",
    }
    exe = str(Path(sys.executable).parent / "loraforge")
    process = subprocess.Popen(
        [exe, "ingest", str(folder), "--dataset", "alice", "--shard-size", "5"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    ctx = open_context()
    try:
        task_id = _wait_for_running(ctx, deadline_s=120)
        process.send_signal(signal.SIGTERM)  # what Kubernetes or a Prefect worker sends before killing
        process.wait(timeout=60)
    finally:
        with contextlib.suppress(ProcessLookupError):  # its children too (Prefect's ephemeral server)
            os.killpg(process.pid, signal.SIGKILL)
    with ctx.catalog.session() as session:
        task = tasks.get_task(session, task_id)
        assert task.status == "CRASHED" and "terminated" in (task.error or ""), (task.status, task.error)
