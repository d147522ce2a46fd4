"""The dashboard's Trainings tab against a live API and a fake Replicate server: start a training from the
form, refresh it until its weights are stored, read its logs, cancel another, see a refusal."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from streamlit.testing.v1 import AppTest

from loraforge.stages.context import open_context
from tests.api.factories import make_caption, make_dataset, make_image, make_workspace
from tests.support.fake_replicate import FakeReplicate, running_fake_replicate

APP = str(Path(__file__).resolve().parents[2] / "services" / "ui" / "app.py")
pytestmark = pytest.mark.usefixtures("prefect_harness")


@pytest.fixture
def replicate(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeReplicate]:
    with running_fake_replicate() as fake:
        # The API (in this process) reads them: the dashboard never sees the token.
        monkeypatch.setenv("REPLICATE_API_TOKEN", fake.token)
        monkeypatch.setenv("REPLICATE_BASE_URL", fake.base_url)
        yield fake


@pytest.fixture
def dataset_id(api_url: str, replicate: FakeReplicate) -> str:
    ctx = open_context()
    with ctx.catalog.session() as session:
        dataset = make_dataset(session, make_workspace(session, "studio"), "alice", trigger_word="ohwx")
        for seed in range(2):
            make_caption(session, make_image(session, ctx.store, dataset, seed=seed), f"ohwx woman {seed}")
        return dataset.id


def start_app() -> AppTest:
    app = AppTest.from_file(APP, default_timeout=60)
    app.run()
    app.sidebar.radio(key="nav").set_value("Trainings").run()
    assert not app.exception, [e.value for e in app.exception]
    return app


def submit_training(app: AppTest, dataset_id: str, destination: str, **fields: str) -> None:
    app.text_input(key=f"{dataset_id}_train_destination").input(destination)
    for name, value in fields.items():
        app.text_input(key=f"{dataset_id}_train_{name}").input(value)
    app.button(key="train_start").click().run()
    assert not app.exception, [e.value for e in app.exception]


def trainings(api_url: str, dataset_id: str) -> list[dict[str, Any]]:
    return httpx.get(f"{api_url}/api/v1/datasets/{dataset_id}/trainings").json()["data"]


def wait_for_training(api_url: str, dataset_id: str, count: int) -> dict[str, Any]:
    """The newest training, once the `train` run has recorded it (the deadline only stops a hung test)."""
    for _ in range(600):
        rows = trainings(api_url, dataset_id)
        if len(rows) == count:
            return rows[0]
        time.sleep(0.2)
    raise AssertionError("the training was not recorded")


def test_train_from_the_form_refresh_and_download(
    api_url: str, dataset_id: str, replicate: FakeReplicate
) -> None:
    app = start_app()
    assert "Trainings" in app.sidebar.radio(key="nav").options
    assert [info.value for info in app.info if "No trainings" in info.value]

    submit_training(app, dataset_id, "me/alice-lora", steps="2")
    assert any("steps: must be at least 3" in error.value for error in app.error)  # refused, nothing ran
    assert not replicate.requests_to("POST", "/v1/")

    submit_training(app, dataset_id, "me/alice-lora", steps="500", learning_rate="0.0002")
    training = wait_for_training(api_url, dataset_id, 1)
    assert training["params"]["steps"] == 500 and training["params"]["learning_rate"] == 0.0002
    app.run()
    assert f"**me/alice-lora** · {training['status']}" in [m.value for m in app.markdown]

    for _ in range(3):  # processing, processing, succeeded (the fake moves one step per poll)
        app.button(key=f"sync-{training['id']}").click().run()
        assert not app.exception, [e.value for e in app.exception]
    assert "**me/alice-lora** · SUCCEEDED" in [m.value for m in app.markdown]
    assert [b.label for b in app.download_button if b.key == f"weights-{training['id']}"] == [
        "Download weights"
    ]
    assert any("pushing version" in block.value for block in app.code)
    assert any(block.value.startswith("me/alice-lora:") for block in app.code)  # the trained version


def test_cancel_a_training_from_its_card(api_url: str, dataset_id: str, replicate: FakeReplicate) -> None:
    replicate.advance_on_get = False
    app = start_app()
    submit_training(app, dataset_id, "me/alice-lora")
    training = wait_for_training(api_url, dataset_id, 1)
    app.run()
    app.button(key=f"cancel-training-{training['id']}").click().run()
    assert not app.exception, [e.value for e in app.exception]
    assert trainings(api_url, dataset_id)[0]["status"] == "CANCELED"
    assert "**me/alice-lora** · CANCELED" in [m.value for m in app.markdown]
    assert not [b for b in app.button if b.key == f"cancel-training-{training['id']}"]  # finished: no button
