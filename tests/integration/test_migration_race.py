"""Processes that start together on an empty Postgres database all migrate it without failing.

Without a lock, 2 of 4 concurrent `loraforge db upgrade` runs failed with UniqueViolation on
`alembic_version` (each created the tables and inserted the version row).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

from sqlalchemy import Engine, create_engine, inspect, text

from loraforge.catalog.db import current_revision, upgrade


def _versions(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text("SELECT count(*) FROM alembic_version")).scalar_one())


def test_four_concurrent_cli_upgrades_on_an_empty_database_all_succeed(
    postgres_url: str, tmp_path: Path
) -> None:
    exe = shutil.which("loraforge", path=str(Path(sys.executable).parent)) or "loraforge"
    env = {k: v for k, v in os.environ.items() if not k.startswith("LORAFORGE_")}
    env |= {"LORAFORGE_CATALOG_URL": postgres_url, "LORAFORGE_HOME": str(tmp_path)}
    procs = [
        subprocess.Popen(
            [exe, "db", "upgrade"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(4)
    ]
    outputs = [proc.communicate(timeout=180) for proc in procs]

    assert [proc.returncode for proc in procs] == [0, 0, 0, 0], [err[-2000:] for _, err in outputs]
    engine = create_engine(postgres_url)
    try:
        assert current_revision(engine) is not None
        assert _versions(engine) == 1
        assert {"datasets", "images", "tasks"} <= set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_threads_racing_through_upgrade_wait_for_each_other(postgres_url: str) -> None:
    """The same race made exact: every thread calls `upgrade` at one instant, each on its own engine."""
    engines = [create_engine(postgres_url) for _ in range(4)]
    barrier = threading.Barrier(len(engines))
    errors: list[BaseException] = []

    def migrate(engine: Engine) -> None:
        barrier.wait()
        try:
            upgrade(engine)
        except BaseException as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=migrate, args=(engine,)) for engine in engines]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    try:
        assert errors == []
        assert _versions(engines[0]) == 1
    finally:
        for engine in engines:
            engine.dispose()
