"""A whole dashboard session in Debian's chromium, against `loraforge serve` and `loraforge ui` subprocesses:
upload 10 real photos and a corrupt file, run the pipeline from the form, review three pictures with the
keyboard only, bulk-replace a word in the captions, switch datasets and check nothing leaks, export and
download the zip. One screenshot per step; the timings a user feels are printed (pytest -s shows them)."""

from __future__ import annotations

import io
import shutil
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.browser import (
    STEP_TIMEOUT_MS,
    Dashboard,
    Screenshots,
    cards,
    chromium,
    failure_screenshot,
    no_tracebacks,
    open_page,
    pick_option,
    running_dashboard,
    screenshots_folder,
    settle,
    wait_for_task,
)
from tests.support.images import corrupt_jpeg, real_photo_paths

RUN_TIMEOUT_MS = 90_000


def session_photos(folder: Path) -> list[Path]:
    """Ten real photographs shipped in installed packages, and one corrupt JPEG."""
    import skimage

    paths = list(real_photo_paths().values())
    data = Path(skimage.__file__).parent / "data"
    paths += [data / "camera.png", data / "motorcycle_left.png", data / "hubble_deep_field.jpg"]
    folder.mkdir(parents=True)
    copies = [Path(shutil.copy(path, folder / path.name)) for path in paths]
    broken = folder / "broken.jpg"
    broken.write_bytes(corrupt_jpeg())
    assert len(copies) == 10
    return [*copies, broken]


@pytest.fixture
def dashboard(stack_env: dict[str, str], tmp_path: Path) -> Iterator[Dashboard]:
    env = stack_env | {"LORAFORGE_EXECUTOR": "inline"}  # one process: the suite measures the dashboard
    with running_dashboard(env, tmp_path / "logs") as running:
        yield running


def detail_title(page: Any) -> str:
    return str(page.locator(".st-key-detail_panel h3").first.inner_text()).strip()


def wait_for_title(page: Any, name: str) -> float:
    start = time.perf_counter()
    page.locator(".st-key-detail_panel h3", has_text=name).wait_for(timeout=STEP_TIMEOUT_MS)
    return time.perf_counter() - start


def test_a_whole_session_in_the_browser(dashboard: Dashboard, tmp_path: Path) -> None:
    api = dashboard.api()
    workspace = api.post("/workspaces", json={"name": "studio"}).json()
    alice = api.post(
        f"/workspaces/{workspace['id']}/datasets",
        json={"name": "alice", "trigger_word": "ohwx", "class_word": "woman", "target_model": "sd15"},
    ).json()
    bob = api.post(
        f"/workspaces/{workspace['id']}/datasets", json={"name": "bob", "target_model": "sd15"}
    ).json()
    # bob holds two pictures of his own, to tell the datasets apart after a switch
    photos = real_photo_paths()
    seeded = api.post(
        f"/datasets/{bob['id']}/images",
        files=[
            ("files", (photos[n].name, photos[n].read_bytes(), "image/png")) for n in ("coffee", "chelsea")
        ],
    ).json()
    assert wait_for_task(api, seeded["task_id"])["status"] == "COMPLETED"
    bob_names = set(cards(api, bob["id"]))
    assert bob_names == {"coffee.png", "chelsea.png"}

    shots = Screenshots(screenshots_folder(tmp_path))
    timings: dict[str, float] = {}
    with chromium() as browser, failure_screenshot(shots, browser) as page:
        # 1. First paint: the sidebar and the first dataset's (empty) grid.
        start = time.perf_counter()
        page.goto(dashboard.ui_url)
        page.locator("h1", has_text="alice").wait_for(timeout=60_000)
        page.get_by_text("No pictures yet").wait_for(timeout=STEP_TIMEOUT_MS)
        timings["first paint"] = time.perf_counter() - start
        for name in ("Review", "Pipeline", "Statistics", "Exports", "Trainings", "Search"):
            page.get_by_test_id("stSidebar").get_by_text(name, exact=True).wait_for(timeout=STEP_TIMEOUT_MS)
        assert page.get_by_text("Deploy", exact=True).count() == 0
        background = page.evaluate("getComputedStyle(document.querySelector('.stApp')).backgroundColor")
        assert sum(int(v) for v in background[4:-1].split(",")[:3]) < 3 * 60, background  # dark theme
        shots.take(page, "first-paint")

        # 2. Upload 10 photos and a corrupt file, run the pipeline from the form.
        open_page(page, "Pipeline")
        files = session_photos(tmp_path / "photos")
        page.get_by_test_id("stFileUploaderDropzoneInput").set_input_files([str(path) for path in files])
        # Each file shows as a chip with its size once the browser has sent it.
        page.wait_for_function(
            """n => Array.from(document.querySelectorAll('[data-testid="stFileChip"]'))
                     .filter(chip => /[KM]B/.test(chip.innerText)).length === n""",
            arg=len(files),
            timeout=STEP_TIMEOUT_MS,
        )
        trigger = page.get_by_label("trigger", exact=True)
        assert trigger.input_value() == "ohwx"  # the dataset's trigger fills the form
        shots.take(page, "upload-and-form")
        page.get_by_role("button", name="Upload and run the pipeline").click()
        page.get_by_text("build finished").wait_for(timeout=RUN_TIMEOUT_MS)
        settle(page)
        assert "run=" in page.url  # the run is in the URL: a reload re-attaches to it
        progress = page.locator(".st-key-run_progress")
        for stage in ("ingest", "curate", "caption", "bucket", "export"):
            assert progress.get_by_text(f"{stage} · completed").count() == 1, stage
        failed = progress.locator("table").filter(has_text="broken.jpg")
        assert failed.count() == 1 and "corrupt" in failed.inner_text()
        shots.take(page, "pipeline-done")
        page.reload()
        page.get_by_text("build finished").wait_for(timeout=STEP_TIMEOUT_MS)
        recent = page.locator("table").filter(has_text="duration")
        assert "COMPLETED" in recent.inner_text() and "build" in recent.inner_text()
        no_tracebacks(page)
        shots.take(page, "pipeline-after-reload")
        before = cards(api, alice["id"])
        assert len(before) == 10 and "broken.jpg" not in before

        # 3. Review three pictures with the keyboard only.
        open_page(page, "Review")
        names = sorted(before)
        wait_for_title(page, names[0])
        page.wait_for_function("() => window.__loraforgeKeys === true", timeout=STEP_TIMEOUT_MS)
        page.keyboard.press("x")  # reject the first: the next opens
        timings["reject and open the next"] = wait_for_title(page, names[1])
        page.keyboard.press("a")  # keep the second
        wait_for_title(page, names[2])
        settle(page)  # as a person would: read the caption before typing into it
        caption_box = page.locator(".st-key-caption_box textarea")
        assert caption_box.input_value() == before[names[2]]["caption"]
        page.keyboard.press("c")  # focus the third's caption, add to it, save and go on
        page.keyboard.type(" smiling")
        start = time.perf_counter()
        page.keyboard.press("Control+Enter")
        wait_for_title(page, names[3])
        timings["save caption and open the next"] = time.perf_counter() - start
        page.keyboard.press("k")
        timings["previous picture"] = wait_for_title(page, names[2])
        settle(page)
        page.locator(f".st-key-open-{before[names[6]]['id']} button").click()  # open one from the grid
        timings["open a picture"] = wait_for_title(page, names[6])
        settle(page)
        page.locator(f".st-key-open-{before[names[2]]['id']} button").click()
        wait_for_title(page, names[2])
        settle(page)
        page.keyboard.press("j")
        timings["next picture"] = wait_for_title(page, names[3])
        settle(page)
        after = cards(api, alice["id"])
        assert (after[names[0]]["status"], after[names[0]]["status_manual"]) == ("rejected", True)
        assert (after[names[1]]["status"], after[names[1]]["status_manual"]) == ("kept", True)
        assert after[names[2]]["caption"] == f"{before[names[2]]['caption']} smiling"
        shots.take(page, "keyboard-review")
        page.mouse.move(600, 500)
        page.mouse.wheel(0, 500)
        page.wait_for_timeout(300)
        panel = page.locator(".st-key-detail_panel").bounding_box()
        assert panel is not None and panel["y"] >= 0, panel  # the detail panel stays in view
        shots.take(page, "grid-scrolled-detail-in-view")

        # 4. Bulk-replace a word in every caption the (empty) filter matches.
        page.mouse.wheel(0, -2000)
        page.get_by_text("Bulk edit").click()
        page.get_by_text("all 10 matching the filters").click()
        settle(page)
        page.get_by_label("Find (replace only)").fill("photo")
        page.get_by_label("Text", exact=True).fill("portrait")
        page.get_by_role("button", name="Apply to captions").click()
        page.get_by_text("caption(s) changed").wait_for(timeout=STEP_TIMEOUT_MS)
        captions = {n: c["caption"] for n, c in cards(api, alice["id"]).items() if c["caption"]}
        assert captions and all("portrait" in text and "photo " not in text for text in captions.values())
        assert captions[names[2]].endswith("smiling")
        settle(page)
        assert page.locator(".st-key-caption_box textarea").input_value() == captions[detail_title(page)]
        page.get_by_test_id("stCheckbox").filter(has_text="Pick").first.click()  # one pick, to see it go
        settle(page)
        assert page.get_by_text("Bulk edit · 1 picked").count() == 1
        shots.take(page, "bulk-replace")

        # 5. Switch datasets: nothing of alice's stays open or picked, and an edit lands on bob's picture.
        open_in_alice = detail_title(page)
        alice_captions = {n: c["caption"] for n, c in cards(api, alice["id"]).items()}
        pick_option(page, "Dataset", "bob", sidebar=True)
        page.locator("h1", has_text="bob").wait_for(timeout=STEP_TIMEOUT_MS)
        assert detail_title(page) in bob_names
        assert page.get_by_text("Bulk edit · 0 picked").count() == 1
        bob_open = detail_title(page)
        settle(page)
        page.locator("h1", has_text="bob").click()  # out of the dataset picker, which keeps the focus
        page.keyboard.press("c")
        page.keyboard.type("bob's own caption")
        page.keyboard.press("Escape")  # leaving the caption saves it
        page.get_by_text("Caption saved").wait_for(timeout=STEP_TIMEOUT_MS)
        assert cards(api, bob["id"])[bob_open]["caption"] == "bob's own caption"
        assert {n: c["caption"] for n, c in cards(api, alice["id"]).items()} == alice_captions
        shots.take(page, "switched-to-bob")
        pick_option(page, "Dataset", "alice", sidebar=True)
        page.locator("h1", has_text="alice").wait_for(timeout=STEP_TIMEOUT_MS)
        assert detail_title(page) == names[0] != open_in_alice  # the selection started afresh
        assert page.get_by_text("Bulk edit · 0 picked").count() == 1
        no_tracebacks(page)

        # 6. Export again (the captions changed) and download the zip.
        open_page(page, "Pipeline")
        page.get_by_role("tab", name="Run one stage").click()
        pick_option(page, "Stage", "export")
        page.get_by_role("button", name="Start").click()
        page.get_by_text("export finished").wait_for(timeout=RUN_TIMEOUT_MS)
        open_page(page, "Exports")
        with page.expect_download(timeout=STEP_TIMEOUT_MS) as download_info:
            page.get_by_role("button", name="Download zip").first.click()
        archive = tmp_path / "export.zip"
        download_info.value.save_as(archive)
        shots.take(page, "exports")
        no_tracebacks(page)

    final = cards(api, alice["id"])
    with zipfile.ZipFile(io.BytesIO(archive.read_bytes())) as exported:
        members = exported.namelist()
        texts = {Path(n).stem: exported.read(n).decode() for n in members if n.endswith(".txt")}
        pictures = [n for n in members if n.lower().endswith((".jpg", ".png", ".webp"))]
    exported = {Path(n).stem.rsplit("_", 1)[0] for n in pictures}  # kohya names them <stem>_<sha256[:8]>
    kept = {Path(n).stem for n, c in final.items() if c["status"] == "kept"}
    assert names[0] in {n for n, c in final.items() if c["status"] == "rejected"}
    assert len(pictures) == len(texts) >= 3
    assert exported <= kept and Path(names[1]).stem in exported
    assert Path(names[0]).stem not in exported  # the picture rejected by keyboard is not exported
    assert all("portrait" in text for text in texts.values()), texts
    assert any(text.strip().endswith("smiling") for text in texts.values())
    assert len(shots.taken) >= 8
    print("\ntimings a user feels (s):", {k: round(v, 2) for k, v in timings.items()})
    print("screenshots:", shots.folder)
    assert timings["first paint"] < 30 and timings["next picture"] < 10
