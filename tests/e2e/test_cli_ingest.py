"""The installed `loraforge` command on a fresh data directory, with no services configured."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from tests.conftest import run_cli
from tests.support.images import jpeg_bytes, real_photo_paths


def test_ingest_then_report_twice_with_embedded_defaults(tmp_path: Path) -> None:
    photos = tmp_path / "alice"
    (photos / "more").mkdir(parents=True)
    shutil.copy(real_photo_paths()["astronaut"], photos / "astronaut.png")
    (photos / "more" / "b.jpg").write_bytes(jpeg_bytes(seed=5))
    (photos / "more" / "b_again.jpg").write_bytes(jpeg_bytes(seed=5))
    (photos / "broken.jpg").write_text("not a jpeg")
    env = {"LORAFORGE_HOME": str(tmp_path / "home")}

    first = run_cli("ingest", str(photos), "--dataset", "alice", "--json", env=env)
    assert first.returncode == 0, first.stderr
    summary = json.loads(first.stdout)
    assert (summary["added"], summary["exact_duplicates"], summary["failed"]) == (2, 1, 1)
    assert summary["failures"][0]["filename"] == "broken.jpg"

    report = run_cli("report", "--dataset", "alice", "--json", env=env)
    assert report.returncode == 0, report.stderr
    images = {image["filename"]: image for image in json.loads(report.stdout)["images"]}
    assert set(images) == {"astronaut.png", "more/b.jpg"}
    assert images["astronaut.png"]["width"] == 512 and images["astronaut.png"]["status"] == "pending"

    second = run_cli("ingest", str(photos), "--dataset", "alice", "--json", env=env)
    assert second.returncode == 0, second.stderr
    assert json.loads(second.stdout)["added"] == 0
    again = json.loads(run_cli("report", "--dataset", "alice", "--json", env=env).stdout)
    assert {image["filename"] for image in again["images"]} == set(images)


def test_failures_exit_non_zero_with_one_line(tmp_path: Path) -> None:
    env = {"LORAFORGE_HOME": str(tmp_path / "home")}
    missing = run_cli("ingest", str(tmp_path / "nope"), "--dataset", "x", env=env)
    assert missing.returncode == 1
    assert "source not found" in missing.stderr and len(missing.stderr.strip().splitlines()) == 1
    unknown = run_cli("report", "--dataset", "ghost", "--json", env=env)
    assert unknown.returncode == 1 and "not found" in unknown.stderr
    bad_config = run_cli("report", "--dataset", "x", env=env | {"LORAFORGE_SHARD_SIZE": "-3"})
    assert bad_config.returncode != 0 and "LORAFORGE_SHARD_SIZE" in bad_config.stderr
    no_db = run_cli(
        "report", "--dataset", "x", env=env | {"LORAFORGE_CATALOG_URL": "postgresql://postgres@127.0.0.1:1/x"}
    )
    assert no_db.returncode == 1 and "cannot reach the catalog" in no_db.stderr
