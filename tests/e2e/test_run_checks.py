"""`loraforge run` checks all the user typed before any stage starts; running it again replaces --out."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from tests.conftest import run_cli
from tests.support.images import corrupt_jpeg, real_photo, real_photo_paths


def photo_folder(folder: Path, count: int = 2) -> Path:
    folder.mkdir(parents=True)
    for path in list(real_photo_paths().values())[:count]:
        shutil.copy(path, folder / path.name)
    return folder


def test_bad_input_fails_at_once_with_one_line_naming_the_option_and_value(tmp_path: Path) -> None:
    home = tmp_path / "home"
    env = {"LORAFORGE_HOME": str(home)}
    photos = photo_folder(tmp_path / "photos")
    (tmp_path / "empty").mkdir()
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "readme.txt").write_text("no pictures here")
    (tmp_path / "theirs").mkdir()
    (tmp_path / "theirs" / "thesis.tex").write_text("someone's work")
    run = ("run", str(photos), "--dataset", "alice", "--trigger", "ohwx woman")
    cases = [
        ((*run, "--format", "kohy"), "--format 'kohy': choose one of kohya, ai-toolkit"),
        ((*run, "--target", "sd3"), "--target 'sd3': choose one of sd15, sdxl, flux"),
        ((*run, "--repeats", "abc"), "--repeats 'abc': expected a whole number"),
        ((*run, "--max-upscale", "0.5"), "--max-upscale 0.5: Input should be greater than or equal to 1"),
        ((*run, "--bogus"), "No such option: --bogus"),
        ((*run, "--reject-check", "blurry"), "--reject-check: 'blurry' is not a check that only tags"),
        ((*run, "--caption-extension", ".caption", "--format", "hf"), "hf reads .txt captions only"),
        (("run", str(tmp_path / "empty"), "-d", "alice"), f"no pictures found in {tmp_path / 'empty'}"),
        (("run", str(tmp_path / "notes"), "-d", "alice"), f"no pictures found in {tmp_path / 'notes'}"),
        (("run", str(tmp_path / "gone"), "-d", "alice"), f"source not found: {tmp_path / 'gone'}"),
        (
            (*run, "--out", str(tmp_path / "theirs")),
            f"--out {tmp_path / 'theirs'} holds files LoRA Forge did not write",
        ),
    ]
    for args, expected in cases:
        result = run_cli(*args, env=env)
        lines = result.stderr.strip().splitlines()
        assert result.returncode == 1, (args, result.stderr)
        assert len(lines) == 1 and lines[0].startswith("error: ") and expected in lines[0], (args, lines)
        assert result.stdout == ""
    assert not home.exists()  # refused before the catalog was even opened: no stage started
    assert (tmp_path / "theirs" / "thesis.tex").read_text() == "someone's work"

    detailed = run_cli("-v", *run, "--format", "kohy", env=env)
    assert detailed.returncode == 1
    assert "Traceback" in detailed.stderr and "--format 'kohy'" in detailed.stderr.splitlines()[-1]


def test_running_the_same_command_again_replaces_out_with_the_new_version(tmp_path: Path) -> None:
    env = {"LORAFORGE_HOME": str(tmp_path / "home"), "LORAFORGE_EXECUTOR": "inline"}
    photos, out = photo_folder(tmp_path / "alice"), tmp_path / "alice-lora"
    words = ("--trigger", "ohwx woman", "--class-word", "woman", "--max-upscale", "4")  # small test photos
    args = ("run", str(photos), "--dataset", "alice", *words, "--out", str(out), "--json")
    first = run_cli(*args, env=env)
    assert first.returncode == 0, first.stderr[-3000:]
    first_id = json.loads(first.stdout)["export_id"]
    assert json.loads((out / ".loraforge-export.json").read_text())["export_id"] == first_id
    # The trigger already ends with the class word: it is not repeated, and it comes first in every caption.
    [folder] = (out / "img").iterdir()
    assert folder.name == "10_ohwx woman"
    captions = [path.read_text() for path in folder.glob("*.txt")]
    assert captions and all(text == "ohwx woman, a photo" for text in captions), captions

    second = run_cli(*args, env=env)
    assert second.returncode == 0, second.stderr[-3000:]
    second_id = json.loads(second.stdout)["export_id"]
    assert second_id != first_id
    assert json.loads((out / ".loraforge-export.json").read_text())["export_id"] == second_id
    assert (out / "dataset_config.toml").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["alice", "alice-lora", "home"]  # nothing left aside

    theirs = tmp_path / "theirs"
    theirs.mkdir()
    (theirs / "thesis.tex").write_text("someone's work")
    forced = run_cli(*args[:-3], "--out", str(theirs), "--overwrite", "--json", env=env)
    assert forced.returncode == 0, forced.stderr[-3000:]
    assert not (theirs / "thesis.tex").exists() and (theirs / "dataset_config.toml").is_file()


def test_the_summary_names_every_file_not_exported_and_report_agrees(tmp_path: Path) -> None:
    env = {"LORAFORGE_HOME": str(tmp_path / "home"), "LORAFORGE_EXECUTOR": "inline"}
    photos = tmp_path / "photos"
    photos.mkdir()
    paths = real_photo_paths()
    for name in ("astronaut", "coffee", "chelsea"):  # chelsea (451x300) is too small for sdxl
        shutil.copy(paths[name], photos / paths[name].name)
    shutil.copy(paths["coffee"], photos / "coffee_again.png")
    (photos / "broken.jpg").write_bytes(corrupt_jpeg())
    rocket = real_photo("rocket")  # 427x640: enlarged to 1067x1600, its sdxl bucket needs no upscale
    rocket.resize((rocket.width * 5 // 2, rocket.height * 5 // 2)).save(photos / "rocket_big.jpg", quality=90)
    # astronaut (512x512) and coffee (400x600) need twice their size for sdxl: over the default 1.5.
    args = ("run", str(photos), "--dataset", "alice", "--trigger", "ohwx", "--class-word", "cup")
    shown = run_cli(*args, env=env)
    assert shown.returncode == 0, shown.stderr[-3000:]
    lines = [" ".join(line.split()) for line in shown.stdout.splitlines()]
    assert "not exported:" in lines
    listed = lines[lines.index("not exported:") + 1 :]
    assert any(line.startswith("broken.jpg: failed to ingest: ") for line in listed), listed
    assert "coffee_again.png: exact copy of coffee.png" in listed
    assert any(line.startswith("chelsea.png: rejected for low_resolution") for line in listed), listed
    assert "astronaut.png: needs upscale 2.00, over --max-upscale 1.5 (--allow-upscale exports it)" in listed
    assert any(line.startswith("coffee.png: needs upscale 2.") for line in listed), listed

    again = run_cli(*args, "--json", env=env)  # the same run again: the same list
    assert again.returncode == 0, again.stderr[-3000:]
    summary = json.loads(again.stdout)
    reasons = {row["filename"]: row["reason"] for row in summary["not_exported"]}
    assert sorted(f"{name}: {reason}" for name, reason in reasons.items()) == sorted(listed)  # the same list
    report = json.loads(run_cli("report", "--dataset", "alice", "--json", env=env).stdout)
    assert report["counts"].get("duplicate", 0) == summary["duplicates"]
    assert report["counts"]["rejected"] == summary["rejected"] == 1
    assert report["counts"]["kept"] == summary["kept"] == 3 and summary["exported"] == 1

    allowed = json.loads(run_cli(*args, "--allow-upscale", "--json", env=env).stdout)
    assert allowed["exported"] == 3
    assert {row["filename"] for row in allowed["not_exported"]} == {
        "broken.jpg",
        "coffee_again.png",
        "chelsea.png",
    }


def test_version_and_help_lead_with_run(tmp_path: Path) -> None:
    from importlib.metadata import version

    env = {"LORAFORGE_HOME": str(tmp_path / "home")}
    shown = run_cli("--version", env=env)
    assert shown.returncode == 0 and shown.stdout.strip() == f"loraforge {version('loraforge')}"
    helped = run_cli("--help", env=env)
    assert helped.returncode == 0
    commands = helped.stdout.split("Commands", 1)[1].splitlines()[1:]
    first = next(line.strip("│ ").split()[0] for line in commands if line.strip("│ ").strip())
    assert first == "run", helped.stdout
    assert not (tmp_path / "home").exists()
