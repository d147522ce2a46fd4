"""`loraforge maintenance integrity` and `loraforge sources` as a user runs them (embedded mode)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from tests.conftest import run_cli
from tests.support.images import real_photo_paths


def test_integrity_reports_orphans_first_then_removes_them_and_fails_on_a_missing_original(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "photos"
    folder.mkdir()
    for name in ("astronaut", "coffee"):
        shutil.copy(real_photo_paths()[name], folder / real_photo_paths()[name].name)
    home = tmp_path / "home"
    env = {"LORAFORGE_HOME": str(home), "LORAFORGE_EXECUTOR": "inline"}
    watched = run_cli("sources", "watch", str(folder), "--dataset", "cli", env=env)
    assert watched.returncode == 0, watched.stderr
    listed = run_cli("sources", "list", "--json", env=env)
    assert json.loads(listed.stdout)[0] | {"dataset_id": None} == {
        "dataset": "cli",
        "dataset_id": None,
        "folders": [str(folder.resolve())],
    }
    synced = run_cli("maintenance", "sync-sources", env=env)
    assert synced.returncode == 0, synced.stderr
    orphan = home / "objects" / "derived" / "no-dataset" / "no-image" / "crop.webp"
    orphan.parent.mkdir(parents=True)
    orphan.write_bytes(b"left behind")

    dry = run_cli("maintenance", "integrity", "--dry-run", "--grace-s", "0", "--json", env=env)
    assert dry.returncode == 0, dry.stderr
    report = json.loads(dry.stdout)
    assert report["orphans"] == ["derived/no-dataset/no-image/crop.webp"] and report["removed"] == []
    assert report["hashed"] == 2 and report["ok"] is True
    assert orphan.exists()

    removed = run_cli("maintenance", "integrity", "--grace-s", "0", "--json", env=env)
    assert json.loads(removed.stdout)["removed"] == ["derived/no-dataset/no-image/crop.webp"]
    assert not orphan.exists()

    original = next((home / "objects" / "originals").rglob("*"), None)
    while original is not None and original.is_dir():
        original = next(original.iterdir())
    assert original is not None
    original.unlink()
    broken = run_cli("maintenance", "integrity", env=env)
    assert broken.returncode == 1
    assert "1 object(s) missing: image" in broken.stderr
