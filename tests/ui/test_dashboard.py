"""The Streamlit dashboard against a live API (Streamlit's AppTest): sidebar, grid, review and caption edits
round-trip; edits stay in the dataset shown; bad input and an absent API are one-line messages."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest
from streamlit.testing.v1 import AppTest

from loraforge.stages.context import open_context
from tests.api.factories import make_caption, make_dataset, make_export, make_image, make_task, make_workspace
from tests.ui.conftest import free_port, serving_api

APP = str(Path(__file__).resolve().parents[2] / "services" / "ui" / "app.py")


@pytest.fixture
def seeded(api_url: str) -> dict[str, str]:
    """A workspace with two datasets; "alice" holds three pictures, one with a caption; "bob" holds one."""
    ctx = open_context()
    with ctx.catalog.session() as session:
        workspace = make_workspace(session, "studio")
        dataset = make_dataset(session, workspace, "alice", trigger_word="ohwx", class_word="woman")
        other = make_dataset(session, workspace, "bob")
        images = [make_image(session, ctx.store, dataset, seed=seed) for seed in range(3)]
        make_caption(session, images[0], "a woman in a red coat")
        bobs = make_image(session, ctx.store, other, seed=10)
        make_caption(session, bobs, "a man in a blue coat")
        return {"dataset": dataset.id, "image": images[0].id, "bob": other.id, "bob_image": bobs.id}


def start_app(page: str = "Review") -> AppTest:
    app = AppTest.from_file(APP, default_timeout=60)
    app.run()
    if page != "Review":
        app.sidebar.radio(key="nav").set_value(page).run()
    assert not app.exception, [e.value for e in app.exception]
    return app


def caption_box(app: AppTest, image_id: str) -> object:
    return next(t for t in app.text_area if str(t.key).startswith(f"caption-{image_id}-"))


def api_caption(api_url: str, image_id: str) -> str | None:
    captions = httpx.get(f"{api_url}/api/v1/images/{image_id}/captions").json()["data"]
    return next((c["text"] for c in captions if c["is_active"]), None)


def test_sidebar_lists_datasets_and_grid_shows_the_images(seeded: dict[str, str]) -> None:
    app = start_app()
    assert app.sidebar.selectbox(key="workspace_id").value is not None
    dataset_picker = app.sidebar.selectbox(key="dataset_id")
    assert dataset_picker.options == ["alice", "bob"]
    assert app.sidebar.radio(key="nav").options == [
        "Review",
        "Pipeline",
        "Statistics",
        "Exports",
        "Trainings",
        "Search",
    ]
    assert app.title[0].value == "alice"
    assert {m.label: m.value for m in app.metric}["Pictures"] == "3"
    assert len(app.image) == 4  # three thumbnails and the open picture's preview
    assert [button.key for button in app.button if button.key and button.key.startswith("open-")] == [
        f"open-{image_id}" for image_id in _image_ids(seeded["dataset"])
    ]
    assert "a woman in a red coat" in [c.value for c in app.caption]  # the caption under its picture


def test_reject_and_caption_edit_reach_the_api(seeded: dict[str, str], api_url: str) -> None:
    image_id = seeded["image"]
    app = start_app()
    app.button(key=f"open-{image_id}").click().run()
    assert caption_box(app, image_id).value == "a woman in a red coat"

    app.text_input(key=f"reason-{image_id}").input("eyes closed")
    app.button(key="kb_reject").click().run()
    assert not app.exception
    image = httpx.get(f"{api_url}/api/v1/images/{image_id}").json()
    assert (image["status"], image["status_reason"], image["status_manual"]) == (
        "rejected",
        "eyes closed",
        True,
    )

    app.button(key=f"open-{image_id}").click().run()
    caption_box(app, image_id).input("ohwx woman in a red coat, outdoors").run()  # autosaves
    assert not app.exception
    captions = httpx.get(f"{api_url}/api/v1/images/{image_id}/captions").json()["data"]
    active = [c for c in captions if c["is_active"]]
    assert [(c["text"], c["edited"]) for c in active] == [("ohwx woman in a red coat, outdoors", True)]
    assert len(captions) == 2
    assert "Caption saved" in [s.value for s in app.success]


def test_the_reason_typed_for_one_picture_does_not_carry_over(seeded: dict[str, str], api_url: str) -> None:
    first, second = _image_ids(seeded["dataset"])[:2]
    app = start_app()
    app.button(key=f"open-{first}").click().run()
    app.text_input(key=f"reason-{first}").input("blurry")
    app.button(key="kb_next").click().run()
    assert app.text_input(key=f"reason-{second}").value == ""
    app.button(key="kb_keep").click().run()
    image = httpx.get(f"{api_url}/api/v1/images/{second}").json()
    assert (image["status"], image["status_reason"]) == ("kept", "kept by hand")


def test_switching_datasets_drops_the_open_picture_and_the_picks(
    seeded: dict[str, str], api_url: str
) -> None:
    """The data-integrity bug: an edit made while bob is shown must never land on alice's picture."""
    alice_image = seeded["image"]
    app = start_app()
    app.button(key=f"open-{alice_image}").click().run()
    app.checkbox(key=f"pick-{seeded['dataset']}-{alice_image}").check().run()
    assert "1 picked" in app.expander[0].label

    app.sidebar.selectbox(key="dataset_id").select_index(1).run()
    assert app.title[0].value == "bob"
    assert "0 picked" in app.expander[0].label
    assert not [t for t in app.text_area if str(t.key).startswith(f"caption-{alice_image}")]
    caption_box(app, seeded["bob_image"]).input("a man in a green coat").run()
    assert not app.exception
    assert api_caption(api_url, seeded["bob_image"]) == "a man in a green coat"
    assert api_caption(api_url, alice_image) == "a woman in a red coat"


def test_bulk_keep_over_the_picks_and_a_whitespace_caption_is_refused(
    seeded: dict[str, str], api_url: str
) -> None:
    ids = _image_ids(seeded["dataset"])
    app = start_app()
    app.button(key="bulk_pick_page").click().run()
    assert "3 picked" in app.expander[0].label
    app.button(key="bulk_keep").click().run()
    assert not app.exception
    statuses = [httpx.get(f"{api_url}/api/v1/images/{i}").json()["status"] for i in ids]
    assert statuses == ["kept", "kept", "kept"]
    assert "3 picture(s) marked kept" in [s.value for s in app.success]

    app.button(key=f"open-{seeded['image']}").click().run()
    caption_box(app, seeded["image"]).input("   ").run()
    assert any("empty or only spaces" in e.value for e in app.error)
    assert api_caption(api_url, seeded["image"]) == "a woman in a red coat"


def test_new_dataset_form_creates_it_and_refuses_a_blank_name(seeded: dict[str, str], api_url: str) -> None:
    app = start_app()
    app.sidebar.text_input(key="new_dataset_name").input("   ")
    next(b for b in app.sidebar.button if b.label == "Create dataset").click().run()
    assert any("empty or only spaces" in e.value for e in app.sidebar.error)
    assert app.sidebar.selectbox(key="dataset_id").options == ["alice", "bob"]

    app.sidebar.text_input(key="new_dataset_name").input("carol")
    app.sidebar.text_input(key="new_dataset_trigger").input("crl")
    next(b for b in app.sidebar.button if b.label == "Create dataset").click().run()
    assert not app.exception
    assert app.title[0].value == "carol"
    workspace_id = httpx.get(f"{api_url}/api/v1/datasets/{seeded['dataset']}").json()["workspace_id"]
    names = {
        d["name"]: d for d in httpx.get(f"{api_url}/api/v1/workspaces/{workspace_id}/datasets").json()["data"]
    }
    assert names["carol"]["trigger_word"] == "crl"


def test_an_absent_api_is_one_line_and_the_retries_back_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LORAFORGE_API_URL", f"http://127.0.0.1:{free_port()}")  # nothing listens there
    app = AppTest.from_file(APP, default_timeout=60)
    app.run()
    assert not app.exception
    first = [e.value for e in app.error]
    assert len(first) == 1 and "\n" not in first[0] and "Traceback" not in first[0]
    assert "cannot reach the API" in first[0] and "again in 1 s" in first[0]
    app.run()
    app.run()
    assert "again in 4 s" in app.error[0].value


def test_the_dashboard_carries_on_when_the_api_returns(
    stack_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    port = free_port()
    monkeypatch.setenv("LORAFORGE_API_URL", f"http://127.0.0.1:{port}")
    app = AppTest.from_file(APP, default_timeout=60)
    app.run()
    assert "again in 1 s" in app.error[0].value
    with serving_api(port):
        app.run()  # what the retry timer does
        assert not app.exception and not app.error
        assert app.session_state["api_failures"] == 0
        assert any("Create a workspace" in info.value for info in app.sidebar.info)


def test_a_run_whose_process_died_reads_crashed_in_one_line(seeded: dict[str, str]) -> None:
    """The API reports a run whose process is gone as CRASHED; the page says so once, and stops polling."""
    import socket
    import subprocess

    from loraforge.catalog.models import Dataset

    gone = subprocess.Popen(["true"])
    gone.wait()
    ctx = open_context()
    with ctx.catalog.session() as session:
        dataset = session.get(Dataset, seeded["dataset"])
        assert dataset is not None
        task = make_task(session, dataset, kind="build", status="RUNNING")
        task.owner = f"{socket.gethostname()}:{gone.pid}"
        task_id = task.id
    app = AppTest.from_file(APP, default_timeout=60)
    app.query_params["run"] = task_id
    app.query_params["page"] = "Pipeline"
    app.run()
    assert not app.exception, [e.value for e in app.exception]
    crashed = [e.value for e in app.error if e.value.startswith("crashed:")]
    assert len(crashed) == 1 and "\n" not in crashed[0] and "is gone" in crashed[0]
    assert "**build** · CRASHED · never started" in [m.value for m in app.markdown]


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
    app.query_params["run"] = task_id
    app.query_params["page"] = "Pipeline"
    app.run()
    assert not app.exception, [e.value for e in app.exception]
    assert "caption finished" in [s.value for s in app.success]
    assert any("caption" in str(t.value) for t in app.table)  # Recent runs
    app.sidebar.radio(key="nav").set_value("Statistics").run()
    assert not app.exception, [e.value for e in app.exception]
    assert {m.label: m.value for m in app.metric}["Pictures"] == "3"
    assert any("Counted with CLIP's tokenizer" in c.value for c in app.caption)  # the API's real counts
    app.sidebar.radio(key="nav").set_value("Exports").run()
    assert [b.label for b in app.download_button] == ["Download zip"]


@pytest.mark.usefixtures("prefect_harness", "ray_cluster")
def test_run_form_comes_from_the_stage_options_and_starts_the_run(
    seeded: dict[str, str], api_url: str
) -> None:
    dataset_id = seeded["dataset"]
    app = start_app("Pipeline")
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


def test_search_page_offers_the_servers_providers_and_refuses_a_blank_query(seeded: dict[str, str]) -> None:
    app = start_app("Search")
    providers = app.multiselect(key="search_providers")
    assert "Openverse" in providers.options and providers.value == ["openverse"]
    assert "cc0" in app.multiselect(key="search_licences").options  # from the API's schema
    app.text_input(key="search_query").input("   ")
    app.button(key="search_start").click().run()
    assert not app.exception, [e.value for e in app.exception]
    assert any("empty or only spaces" in e.value for e in app.error)
