"""The Search page, the Statistics charts and the reference faces in Debian's chromium, against `loraforge
serve` and `loraforge ui` subprocesses. The image-search providers are fakes: real HTTP servers on loopback
(tests/support/fake_providers.py), reached through the LORAFORGE_<PROVIDER>_URL settings with loopback
downloads allowed. The reference faces use the real dlib models on real portraits."""

from __future__ import annotations

import io
import re
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
    running_dashboard,
    screenshots_folder,
    settle,
    wait_for_task,
)
from tests.support.fake_providers import FakeProvider, provider_env, running

RUN_TIMEOUT_MS = 90_000


@pytest.fixture
def openverse() -> Iterator[FakeProvider]:
    with running("openverse", total=8) as fake:
        yield fake


@pytest.fixture
def dashboard(stack_env: dict[str, str], openverse: FakeProvider, tmp_path: Path) -> Iterator[Dashboard]:
    env = (
        stack_env | provider_env(openverse) | {"LORAFORGE_EXECUTOR": "inline", "LORAFORGE_URL_TIMEOUT_S": "4"}
    )
    with running_dashboard(env, tmp_path / "logs") as running_:
        yield running_


def new_dataset(dashboard: Dashboard, name: str) -> dict[str, Any]:
    api = dashboard.api()
    workspace = api.post("/workspaces", json={"name": f"{name}-studio"}).json()
    answer = api.post(f"/workspaces/{workspace['id']}/datasets", json={"name": name, "target_model": "sd15"})
    assert answer.status_code == 201, answer.text
    return dict(answer.json())


def test_search_add_and_statistics_in_the_browser(
    dashboard: Dashboard, openverse: FakeProvider, tmp_path: Path
) -> None:
    api = dashboard.api()
    dataset = new_dataset(dashboard, "hopper")
    shots = Screenshots(screenshots_folder(tmp_path))
    with chromium() as browser, failure_screenshot(shots, browser) as page:
        page.goto(dashboard.ui_url)
        page.locator("h1", has_text="hopper").wait_for(timeout=60_000)
        open_page(page, "Search")

        # Ask the (fake) Openverse, any licence, no size floor.
        page.get_by_label("Search for").fill("grace hopper")
        side = page.get_by_label("Shorter side at least (px)")
        side.fill("0")
        side.press("Tab")
        page.get_by_role("button", name="Search", exact=True).click()
        checkboxes = page.get_by_test_id("stCheckbox").filter(has_text="Add")
        checkboxes.first.wait_for(timeout=STEP_TIMEOUT_MS)
        settle(page)
        assert checkboxes.count() == 8
        assert not openverse.file_requests() or all("/files/" in r.path for r in openverse.file_requests())
        # Each candidate shows its licence, linked to the licence's deed.
        body = page.locator("body").inner_text()
        assert "CC0" in body.upper() or "CC BY" in body.upper(), body[:2000]
        licence_links = page.locator("a[href*='creativecommons.org']")
        assert licence_links.count() >= 8
        shown = page.get_by_text(re.compile(r"^Grace Hopper \d+$")).all_inner_texts()  # the titles, in order
        assert len(shown) == 8, shown
        labels = set(licence_links.all_inner_texts())
        shots.take(page, "search-candidates")

        # Pick three and add them: the download and ingest run shows on the Pipeline page.
        for index in range(3):
            checkboxes.nth(index).click()
            settle(page)
        page.get_by_role("button", name="Add 3 picked to hopper").click()
        page.get_by_text("search finished").wait_for(timeout=RUN_TIMEOUT_MS)
        settle(page)
        no_tracebacks(page)
        shots.take(page, "search-added")

        # The dataset gained exactly those three, each with its provenance and licence.
        added = cards(api, dataset["id"])
        assert len(added) == 3, added
        titles = set()
        for card in added.values():
            provenance = api.get(f"/images/{card['id']}").json()["metadata"]["provenance"]
            titles.add(provenance["title"])
            assert provenance["provider"] == "openverse", provenance
            assert provenance["licence_label"] in labels, (provenance, labels)
            assert provenance["licence"] and provenance["page_url"] and provenance["file_url"], provenance
            assert provenance["file_url"].startswith(openverse.url)
        assert titles == set(shown[:3])  # exactly the three picked
        assert len(openverse.file_requests()) >= 3

        # Statistics: after curation, captions and buckets every chart has data; each renders (vega-embed
        # draws it), with no error on the page.
        for stage in ("curate", "caption", "bucket"):
            run = api.post(f"/datasets/{dataset['id']}/runs/{stage}", json={}).json()
            assert wait_for_task(api, run["task_id"])["status"] == "COMPLETED", stage
        open_page(page, "Statistics")
        charts = page.locator(".vega-embed")
        charts.first.wait_for(timeout=STEP_TIMEOUT_MS)
        page.wait_for_function(
            """() => Array.from(document.querySelectorAll('.vega-embed'))
                     .filter(e => e.querySelector('canvas, svg')).length >= 4""",
            timeout=STEP_TIMEOUT_MS,
        )
        drawn = page.locator(".vega-embed canvas, .vega-embed svg.marks")
        assert drawn.count() >= 4
        for title in ("Resolution", "Buckets", "Caption length", "Upscale factors"):
            assert page.get_by_role("heading", name=title).count() == 1, title
        assert all(box and box["width"] > 50 and box["height"] > 50 for box in _boxes(drawn))
        assert page.get_by_test_id("stAlert").filter(has_text="rror").count() == 0
        no_tracebacks(page)
        shots.take(page, "statistics")


def _boxes(locator: Any) -> list[dict[str, float] | None]:
    return [locator.nth(i).bounding_box() for i in range(locator.count())]


def _jpeg(image: Any) -> bytes:
    out = io.BytesIO()
    image.convert("RGB").save(out, "JPEG", quality=92)
    return out.getvalue()


def test_reference_faces_in_the_browser(dashboard: Dashboard, tmp_path: Path) -> None:
    from PIL import ImageOps

    from tests.identity.photos import portrait

    api = dashboard.api()
    dataset = new_dataset(dashboard, "grace")
    hopper = portrait("grace_hopper")
    files = {
        "hopper.jpg": _jpeg(hopper),
        "hopper_mirrored.jpg": _jpeg(ImageOps.mirror(hopper)),
        "astronaut.jpg": _jpeg(portrait("astronaut")),
    }
    ingest = api.post(
        f"/datasets/{dataset['id']}/images",
        files=[("files", (name, data, "image/jpeg")) for name, data in files.items()],
    ).json()
    assert wait_for_task(api, ingest["task_id"])["status"] == "COMPLETED"
    ids = {name: card["id"] for name, card in cards(api, dataset["id"]).items()}
    references_url = f"/datasets/{dataset['id']}/identity/references"

    shots = Screenshots(screenshots_folder(tmp_path))
    with chromium() as browser, failure_screenshot(shots, browser) as page:
        page.goto(dashboard.ui_url)
        page.locator("h1", has_text="grace").wait_for(timeout=60_000)
        page.locator(f".st-key-open-{ids['hopper.jpg']} button").wait_for(timeout=STEP_TIMEOUT_MS)
        settle(page)

        # Pick Grace Hopper's picture and make it the reference face.
        page.locator(f".st-key-pick-{dataset['id']}-{ids['hopper.jpg']}").get_by_text("Pick").click()
        settle(page)
        page.get_by_text("Reference faces · none").click()
        page.get_by_role("button", name="Use the 1 picked as reference faces").click()
        page.get_by_text("1 reference face(s) set").wait_for(timeout=STEP_TIMEOUT_MS)
        settle(page)
        saved = api.get(references_url).json()
        assert saved["count"] == 1 and saved["data"][0]["image_id"] == ids["hopper.jpg"], saved
        assert page.locator(".st-key-reference_faces").get_by_text(saved["data"][0]["name"]).count() == 1
        shots.take(page, "reference-faces-set")

        # Curate: every picture is compared with her face; the review shows it.
        run = api.post(f"/datasets/{dataset['id']}/runs/curate", json={}).json()
        assert wait_for_task(api, run["task_id"])["status"] == "COMPLETED"
        page.reload()
        page.locator("h1", has_text="grace").wait_for(timeout=60_000)
        page.locator(f".st-key-open-{ids['astronaut.jpg']} button").click()
        page.locator(".st-key-detail_panel h3", has_text="astronaut.jpg").wait_for(timeout=STEP_TIMEOUT_MS)
        other = page.locator(".st-key-detail_panel").get_by_text("identity: other person").first
        other.wait_for(timeout=STEP_TIMEOUT_MS)
        assert (
            page.locator(".st-key-detail_panel").get_by_text("red: closest face, another person").count() == 1
        )
        astronaut = api.get(f"/images/{ids['astronaut.jpg']}").json()["metadata"]["identity"]
        assert f"distance {astronaut['distance']:.2f} / {astronaut['max_distance']:.2f}" in other.inner_text()
        shots.take(page, "identity-other-person")
        settle(page)
        page.locator(f".st-key-open-{ids['hopper.jpg']} button").click()
        page.locator(".st-key-detail_panel h3", has_text="hopper.jpg").wait_for(timeout=STEP_TIMEOUT_MS)
        page.locator(".st-key-detail_panel").get_by_text("identity: same person").first.wait_for(
            timeout=STEP_TIMEOUT_MS
        )
        assert page.locator(".st-key-detail_panel").get_by_text("green: the face matching").count() == 1
        shots.take(page, "identity-same-person")

        # Clear them: the filter is off.
        settle(page)
        page.get_by_text("Reference faces · 1").click()
        page.get_by_role("button", name="Clear reference faces").click()
        page.get_by_text("Reference faces cleared").wait_for(timeout=STEP_TIMEOUT_MS)
        assert api.get(references_url).json()["count"] == 0
        assert page.get_by_text("Reference faces · none").count() == 1
        no_tracebacks(page)
        shots.take(page, "reference-faces-cleared")


def test_a_server_without_the_face_models_says_so_in_one_line(
    stack_env: dict[str, str], tmp_path: Path
) -> None:
    """The API answers 503 when its dlib weights are unusable (here a model folder holding a truncated
    recogniser and no landmark model): the dashboard says so in one line and nothing is set."""
    from tests.identity.photos import portrait

    weights = tmp_path / "models" / "dlib"
    weights.mkdir(parents=True)
    (weights / "dlib_face_recognition_resnet_model_v1.dat").write_bytes(b"truncated")
    env = stack_env | {"LORAFORGE_EXECUTOR": "inline", "LORAFORGE_MODEL_DIR": str(tmp_path / "models")}
    shots = Screenshots(screenshots_folder(tmp_path))
    with running_dashboard(env, tmp_path / "logs") as dashboard:
        api = dashboard.api()
        dataset = new_dataset(dashboard, "nodlib")
        ingest = api.post(
            f"/datasets/{dataset['id']}/images",
            files=[("files", ("hopper.jpg", _jpeg(portrait("grace_hopper")), "image/jpeg"))],
        ).json()
        assert wait_for_task(api, ingest["task_id"])["status"] == "COMPLETED"
        (image_id,) = (card["id"] for card in cards(api, dataset["id"]).values())
        with chromium() as browser, failure_screenshot(shots, browser) as page:
            page.goto(dashboard.ui_url)
            page.locator(f".st-key-pick-{dataset['id']}-{image_id}").wait_for(timeout=60_000)
            settle(page)
            page.locator(f".st-key-pick-{dataset['id']}-{image_id}").get_by_text("Pick").click()
            settle(page)
            page.get_by_text("Reference faces · none").click()
            page.get_by_role("button", name="Use the 1 picked as reference faces").click()
            alert = page.get_by_test_id("stAlert").filter(has_text="not available on this server")
            alert.wait_for(timeout=STEP_TIMEOUT_MS)
            assert "\n" not in alert.inner_text().strip(), alert.inner_text()
            assert "dlib" in alert.inner_text()
            no_tracebacks(page)
            shots.take(page, "reference-faces-503")
        assert api.get(f"/datasets/{dataset['id']}/identity/references").json()["count"] == 0
