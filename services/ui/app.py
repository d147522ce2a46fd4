"""The LoRA Forge dashboard: pick a dataset in the sidebar, then review, run and export it in tabs."""

from __future__ import annotations

from typing import Any

import streamlit as st

from services.ui.client import ApiError
from services.ui.state import api, log_in, log_out, session_token
from services.ui.views.images import show_images
from services.ui.views.pipeline import show_pipeline
from services.ui.views.stats import show_exports, show_stats
from services.ui.views.trainings import show_trainings

TARGET_MODELS = ["sdxl", "flux", "sd15"]


def sidebar() -> dict[str, Any] | None:
    """Workspace and dataset pickers plus the forms that create them; returns the chosen dataset."""
    client = api()
    st.sidebar.title("LoRA Forge")
    workspaces = client.workspaces()
    if not workspaces:
        st.sidebar.info("Create a workspace to begin.")
    names = {w["id"]: w["name"] for w in workspaces}
    workspace_id = st.sidebar.selectbox(
        "Workspace", list(names), format_func=names.__getitem__, key="workspace_id"
    )
    with st.sidebar.expander("New workspace", expanded=not workspaces):
        with st.form("new_workspace", clear_on_submit=True):
            name = st.text_input("Name", key="new_workspace_name")
            if st.form_submit_button("Create workspace") and name.strip():
                _create(lambda: client.create_workspace(name.strip()), "workspace_id")
    if workspace_id is None:
        return None
    datasets = {d["id"]: d for d in client.datasets(workspace_id)}
    dataset_id = st.sidebar.selectbox(
        "Dataset", list(datasets), format_func=lambda i: datasets[i]["name"], key="dataset_id"
    )
    with st.sidebar.expander("New dataset", expanded=not datasets):
        with st.form("new_dataset", clear_on_submit=True):
            dataset_name = st.text_input("Name", key="new_dataset_name").strip()
            fields = {
                "name": dataset_name,
                "trigger_word": st.text_input("Trigger word", key="new_dataset_trigger") or None,
                "class_word": st.text_input("Class word", key="new_dataset_class") or None,
                "target_model": st.selectbox("Target model", TARGET_MODELS, key="new_dataset_target"),
            }
            if st.form_submit_button("Create dataset") and dataset_name:
                _create(lambda: client.create_dataset(workspace_id, **fields), "dataset_id")
    return datasets.get(dataset_id) if dataset_id else None


def _create(call: Any, select_key: str) -> None:
    try:
        created = call()
    except ApiError as exc:
        st.sidebar.error(exc.message)
        return
    # A widget's value can be set only before it is drawn: remember it and rerun.
    st.session_state["pending_select"] = (select_key, created["id"])
    st.rerun()


def apply_pending_selection() -> None:
    pending = st.session_state.pop("pending_select", None)
    if pending:
        st.session_state[pending[0]] = pending[1]


def login_box(refused: bool) -> None:
    """Log in with a user token (`loraforge users add`), or out again; the token lives in this session."""
    if session_token():
        if st.sidebar.button("Log out", key="log_out"):
            log_out()
            st.rerun()
        return
    with st.sidebar.form("login", clear_on_submit=True):
        if refused:
            st.warning("The API needs a token: log in with yours.")
        token = st.text_input("Your API token", type="password", key="login_token_input")
        if st.form_submit_button("Log in") and token.strip():
            log_in(token)
            st.rerun()


def main() -> None:
    st.set_page_config(page_title="LoRA Forge", layout="wide")
    apply_pending_selection()
    try:
        dataset = sidebar()
    except ApiError as exc:
        if exc.status == 401:
            if session_token():
                log_out()  # a token the API no longer takes
            login_box(refused=True)
            st.info("Log in with your API token to see your workspaces.")
            return
        st.error(f"The API is not available: {exc.message}")
        return
    login_box(refused=False)
    if dataset is None:
        st.title("LoRA Forge")
        st.info("Pick or create a dataset in the sidebar.")
        return
    st.title(dataset["name"])
    trigger = dataset["trigger_word"] or "no trigger word"
    st.caption(f"{trigger} · {dataset['class_word'] or 'no class word'} · {dataset['target_model']}")
    images, pipeline, stats, exports, trainings = st.tabs(
        ["Images", "Pipeline", "Statistics", "Exports", "Trainings"]
    )
    with images:
        show_images(dataset)
    with pipeline:
        show_pipeline(dataset)
    with stats:
        show_stats(dataset)
    with exports:
        show_exports(dataset)
    with trainings:
        show_trainings(dataset)


main()
