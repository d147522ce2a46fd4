"""The Streamlit dashboard against a live API: sidebar, grid, review and caption edits round-trip."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest
from streamlit.testing.v1 import AppTest

from loraforge.stages.context import open_context
from tests.api.factories import make_caption, make_dataset, make_export, make_image, make_task, make_workspace

APP = str(Path(__file__).resolve().parents[2] / "services" / "ui" / "app.py")


@pytest.fixture
def seeded(api_url: str) -> dict[str, str]:
    """A workspace with two datasets; "alice" holds three pictures, one with a caption."""
    ctx = open_context()
    with ctx.catalog.session() as session:
        workspace = make_workspace(session, "studio")
        dataset = make_dataset(session, workspace, "alice", trigger_word="ohwx", class_word="woman")
        make_dataset(session, workspace, "bob")
        images = [make_image(session, ctx.store, dataset, seed=seed) for seed in range(3)]
        make_caption(session, images[0], "a woman in a red coat")
        return {"dataset": dataset.id, "image": images[0].id}


def start_app() -> AppTest:
    app = AppTest.from_file(APP, default_timeout=60)
    app.run()
    assert not app.exception, [e.value for e in app.exception]
    return app


def test_sidebar_lists_datasets_and_grid_shows_the_images(seeded: dict[str, str]) -> None:
    app = start_app()
    assert app.sidebar.selectbox(key="workspace_id").value is not None
    dataset_picker = app.sidebar.selectbox(key="dataset_id")
    assert dataset_picker.options == ["alice", "bob"]
    assert app.title[0].value == "alice"
    assert app.metric[0].value == "3"
    assert len(app.image) == 3
    assert [button.key for button in app.button if button.key and button.key.startswith("open-")] == [
        f"open-{image_id}" for image_id in _image_ids(seeded["dataset"])
    ]


def test_reject_and_caption_edit_reach_the_api(seeded: dict[str, str], api_url: str) -> None:
    image_id = seeded["image"]
    app = start_app()
    app.button(key=f"open-{image_id}").click().run()
    assert app.text_area(key=f"caption-{image_id}").value == "a woman in a red coat"

    app.text_input(key="review_reason").input("eyes closed")
    app.button(key="reject").click().run()
    assert not app.exception
    image = httpx.get(f"{api_url}/api/v1/images/{image_id}").json()
    assert (image["status"], image["status_reason"], image["status_manual"]) == (
        "rejected",
        "eyes closed",
        True,
    )

    app.text_area(key=f"caption-{image_id}").input("ohwx woman in a red coat, outdoors")
    app.button(key="save_caption").click().run()
    assert not app.exception
    captions = httpx.get(f"{api_url}/api/v1/images/{image_id}/captions").json()["data"]
    active = [c for c in captions if c["is_active"]]
    assert [(c["text"], c["edited"]) for c in active] == [("ohwx woman in a red coat, outdoors", True)]
    assert len(captions) == 2


def test_new_dataset_form_creates_it_through_the_api(seeded: dict[str, str], api_url: str) -> None:
    app = start_app()
    app.sidebar.text_input(key="new_dataset_name").input("carol")
    app.sidebar.text_input(key="new_dataset_trigger").input("crl")
    next(b for b in app.sidebar.button if b.label == "Create dataset").click().run()
    assert not app.exception
    assert app.sidebar.selectbox(key="dataset_id").value is not None
    assert app.title[0].value == "carol"
    workspace_id = httpx.get(f"{api_url}/api/v1/datasets/{seeded['dataset']}").json()["workspace_id"]
    names = {
        d["name"]: d for d in httpx.get(f"{api_url}/api/v1/workspaces/{workspace_id}/datasets").json()["data"]
    }
    assert names["carol"]["trigger_word"] == "crl"


def _image_ids(dataset_id: str) -> list[str]:
    from sqlalchemy import select

    from loraforge.catalog.models import Image

    with open_context().catalog.session() as session:
        query = select(Image.id).where(Image.dataset_id == dataset_id).order_by(Image.original_filename)
        return list(session.scalars(query))


def test_pipeline_progress_statistics_and_exports_render(seeded: dict[str, str]) -> None:
    ctx = open_context()
    with ctx.catalog.session() as session:
        from loraforge.catalog.models import Dataset

        dataset = session.get(Dataset, seeded["dataset"])
        assert dataset is not None
        task = make_task(session, dataset, kind="caption", status="COMPLETED")
        task.done, task.progress = 10, 1.0
        make_export(session, ctx.store, dataset, {"img/a.jpg": b"jpeg"})
        task_id = task.id
    app = AppTest.from_file(APP, default_timeout=60)
    app.session_state["watch_task"] = task_id
    app.run()
    assert not app.exception, [e.value for e in app.exception]
    assert "caption" in " ".join(m.value for m in app.markdown)
    assert [s.value for s in app.success] == ["Done"]
    assert {m.label: m.value for m in app.metric}["Images"] == "3"
    assert [b.label for b in app.download_button] == ["Download zip"]


@pytest.mark.usefixtures("prefect_harness", "ray_cluster")
def test_run_form_comes_from_the_stage_options_and_starts_the_run(
    seeded: dict[str, str], api_url: str
) -> None:
    dataset_id = seeded["dataset"]
    app = start_app()
    app.selectbox(key="stage").select("curate").run()
    assert not app.exception, [e.value for e in app.exception]
    # The fields are the CurateOptions model's, read from the API's OpenAPI document.
    target = app.selectbox(key=f"{dataset_id}_curate_target")
    assert target.options == ["(default)", "sd15", "sdxl", "flux"]
    target.select("sd15")
    app.button(key="run_start").click().run()
    assert not app.exception, [e.value for e in app.exception]
    tasks = httpx.get(f"{api_url}/api/v1/datasets/{dataset_id}/tasks").json()["data"]
    assert [(t["kind"], t["params"]["target"]) for t in tasks] == [("curate", "sd15")]
    # The run goes on in the API's thread: let it finish, so nothing of this test outlives it.
    deadline = time.monotonic() + 300
    while (
        tasks[0]["status"] not in ("COMPLETED", "FAILED", "CANCELLED", "CRASHED")
        and time.monotonic() < deadline
    ):
        time.sleep(0.5)
        tasks = httpx.get(f"{api_url}/api/v1/datasets/{dataset_id}/tasks").json()["data"]
    assert tasks[0]["status"] == "COMPLETED", tasks[0]["error"]
