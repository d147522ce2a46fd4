"""`--json` prints JSON and nothing else on stdout, whatever the libraries underneath write there."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from tests.support.images import real_photo_paths

# Loaded by Python at start-up (it is on PYTHONPATH): writes to file descriptor 1 while the command runs
# (when the flow's module is imported) and again at exit, as Ray's and native libraries' messages do,
# bypassing sys.stdout.
NOISE = """
import atexit, os, sys
atexit.register(os.write, 1, b"noise at exit\\n")
def noise(event, args):
    if event == "import" and args[0] == "flows.ingest":
        os.write(1, b"noise while running\\n")
sys.addaudithook(noise)
"""


def test_json_stdout_holds_only_the_result(tmp_path: Path) -> None:
    folder = tmp_path / "photos"
    folder.mkdir()
    for name in ("astronaut", "coffee"):
        shutil.copy(real_photo_paths()[name], folder / real_photo_paths()[name].name)
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(NOISE)
    env = {k: v for k, v in os.environ.items() if not k.startswith("LORAFORGE_")}
    env |= {
        "LORAFORGE_HOME": str(tmp_path / "home"),
        "LORAFORGE_EXECUTOR": "inline",
        "PYTHONPATH": str(site),
    }
    exe = shutil.which("loraforge", path=str(Path(sys.executable).parent)) or "loraforge"

    done = subprocess.run(
        [exe, "ingest", str(folder), "--dataset", "json-out", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )

    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout)  # the whole of stdout is one JSON document
    assert result["added"] == 2
    assert "noise while running" in done.stderr and "noise at exit" in done.stderr
