"""Trainings on Replicate: start one from the dataset, follow its status and logs, cancel it, download the
weights. The form is built from the training options' schema in the API's OpenAPI document, like the run
forms; everything goes through the API (which holds the Replicate token)."""

from __future__ import annotations

from typing import Any

import streamlit as st

from services.ui.client import FINISHED, ApiError
from services.ui.state import api
from services.ui.views.forms import option_widgets

WATCH_KEY = "watch_training_task"
ACTIVE = ("STARTING", "PROCESSING")


def show_trainings(dataset: dict[str, Any]) -> None:
    show_start(dataset)
    show_start_progress()
    st.divider()
    trainings = api().trainings(dataset["id"])
    if not trainings:
        st.info("No trainings yet.")
    for training in trainings:
        show_training(dataset, training)


def show_start(dataset: dict[str, Any]) -> None:
    st.subheader("Train a LoRA on Replicate")
    st.caption(
        "The dataset is exported for Replicate, uploaded and trained into the destination model (created "
        "private if missing). Replicate bills the trainer's GPU time: see https://replicate.com/pricing."
    )
    try:
        schema = _training_form()
    except ApiError as exc:
        st.error(exc.message)
        return
    with st.form(key="train_form"):
        options = option_widgets(schema, key=f"{dataset['id']}_train")
        started = st.form_submit_button("Train", type="primary", key="train_start")
    if started:
        try:
            accepted = api().start_training(dataset["id"], options)
        except ApiError as exc:
            st.error(exc.message)
            return
        st.session_state[WATCH_KEY] = accepted["task_id"]
        st.toast("training started")


@st.cache_data(ttl=300, show_spinner=False)
def _training_form() -> dict[str, Any]:
    return api().training_form()


def show_start_progress() -> None:
    """The `train` run just started: exporting and uploading until Replicate has accepted the training."""
    task_id = st.session_state.get(WATCH_KEY)
    if not task_id:
        return
    running = api().task(task_id)["status"] not in FINISHED

    @st.fragment(run_every=1.0 if running else None)
    def progress_block() -> None:
        task = api().task(task_id)
        if task["status"] == "COMPLETED":
            result = task["result"] or {}
            st.success(f"Replicate accepted training {result.get('training_id')} ({result.get('status')})")
        elif task["status"] in FINISHED:
            st.error(f"training not started: {task['error'] or 'no reason recorded'}")
        else:
            st.info("Exporting and uploading the dataset…")
        if running and task["status"] in FINISHED:
            st.rerun()  # the new training appears in the list below

    progress_block()


def show_training(dataset: dict[str, Any], training: dict[str, Any]) -> None:
    training_id = training["id"]
    with st.container(border=True):
        st.markdown(f"**{training['destination']}** · {training['status']}")
        st.caption(f"{training['created_at']} · {training['trainer_version']} · {training_id}")
        if training["output_version"]:
            st.code(training["output_version"], language=None)
        if training["error"]:
            st.error(training["error"])
        refresh, cancel, download = st.columns(3)
        if training["status"] in ACTIVE:
            if refresh.button("Refresh", key=f"sync-{training_id}"):
                _act(lambda: api().sync_training(training_id))
            if cancel.button("Cancel", key=f"cancel-training-{training_id}"):
                _act(lambda: api().cancel_training(training_id))
        if training["weights_key"]:
            download.download_button(
                "Download weights",
                data=_downloader(training_id),
                file_name=f"{dataset['name']}-{training_id[:8]}-{training['weights_key'].rsplit('/', 1)[-1]}",
                mime="application/octet-stream",
                key=f"weights-{training_id}",
            )
        elif training["status"] == "SUCCEEDED" and refresh.button("Store weights", key=f"sync-{training_id}"):
            _act(lambda: api().sync_training(training_id))
        with st.expander("Logs"):
            st.code(training["logs_tail"] or "(no logs yet)", language=None)


def _act(call: Any) -> None:
    try:
        call()
    except ApiError as exc:
        st.error(exc.message)
        return
    st.rerun()


def _downloader(training_id: str) -> Any:
    # Deferred: the weights are fetched only when the user clicks, not on every rerun.
    return lambda: api().training_weights(training_id)
