"""The README's quickstart, as written: its `loraforge` commands run and exit 0, the second time too."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

from tests.conftest import run_cli
from tests.support.images import real_photo, real_photo_paths

README = Path(__file__).resolve().parents[2] / "README.md"


def quickstart_commands() -> list[list[str]]:
    """The `loraforge` commands of the README's first code block (the quickstart), as argument lists.

    The block installs the package first (`python3 -m venv`, `pip install -e .`); the tests run in an
    environment where it is installed, so only the `loraforge` commands are taken."""
    text = README.read_text(encoding="utf-8")
    block = re.search(r"```bash\n(.*?)```", text, flags=re.DOTALL)
    assert block is not None, "the README has no bash block"
    commands = []
    for line in block.group(1).splitlines():
        for part in line.split("&&"):
            words = shlex.split(part.strip())
            if words and words[0] == "loraforge":
                commands.append(words[1:])
    return commands


def test_the_quickstart_commands_run_and_run_again(tmp_path: Path) -> None:
    commands = quickstart_commands()
    assert [words[0] for words in commands] == ["run"]
    photos = tmp_path / "photos" / "alice"
    photos.mkdir(parents=True)
    for name in real_photo_paths():  # enlarged to phone-photo sizes: sdxl takes them without upscaling
        photo = real_photo(name)
        photo.resize((photo.width * 5 // 2, photo.height * 5 // 2)).save(photos / f"{name}.jpg", quality=90)
    places = {"~/photos/alice": str(photos), "./alice-lora": str(tmp_path / "alice-lora")}
    env = {"LORAFORGE_HOME": str(tmp_path / "home"), "LORAFORGE_EXECUTOR": "inline"}
    for attempt in ("first", "again"):
        for words in commands:
            args = [places.get(word, word) for word in words]
            result = run_cli(*args, "--json", env=env, timeout=900)
            assert result.returncode == 0, (attempt, args, result.stderr[-3000:])
            summary = json.loads(result.stdout)
            assert summary["exported"] > 0 and summary["written_to"] == str(tmp_path / "alice-lora")
    manifest = json.loads((tmp_path / "alice-lora" / ".loraforge-export.json").read_text())
    assert manifest["export_id"] == summary["export_id"]  # the second run's version replaced the first
    [folder] = (tmp_path / "alice-lora" / "img").iterdir()
    assert folder.name == "10_ohwx woman"
    assert all(path.read_text().startswith("ohwx woman, ") for path in folder.glob("*.txt"))
