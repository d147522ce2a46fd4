"""The LoRA Forge dashboard: the sidebar picks the workspace, the dataset and the page; each page talks to the
API only (services.ui.client)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import streamlit as st

from services.ui.client import ApiError
from services.ui.state import (
    api,
    failures_as_messages,
    log_in,
    log_out,
    one_line,
    query_param,
    review_state,
    session_token,
    set_query_param,
)
from services.ui.views.pipeline import show_pipeline
from services.ui.views.review import show_review
from services.ui.views.search import show_search
from services.ui.views.stats import show_exports, show_stats
from services.ui.views.trainings import show_trainings

TARGET_MODELS = ["sdxl", "flux", "sd15"]
PAGES: dict[str, Callable[[dict[str, Any]], None]] = {
    "Review": show_review,
    "Pipeline": show_pipeline,
    "Statistics": show_stats,
    "Exports": show_exports,
    "Trainings": show_trainings,
    "Search": show_search,
}
AWAY_KEY = "api_failures"
MAX_RETRY_S = 30
STYLE = """
<style>
/* The detail panel stays in view while the grid scrolls. */
div[data-testid="stColumn"]:has(.st-key-detail_panel) {
  position: sticky; top: 1rem; align-self: flex-start; max-height: calc(100vh - 2rem); overflow-y: auto;
}
/* The open picture's card is outlined. */
[class*="st-key-card-"][class*="-open"] { border-color: #38bdf8 !important; box-shadow: 0 0 0 1px #38bdf8; }
.block-container { padding-top: 2.5rem; }
</style>
"""


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
            if st.form_submit_button("Create workspace"):
                if name.strip():
                    _create(lambda: client.create_workspace(name.strip()), "workspace_id")
                else:
                    st.error("A name cannot be empty or only spaces.")
    if workspace_id is None:
        return None
    datasets = {d["id"]: d for d in client.datasets(workspace_id)}
    wanted = query_param("dataset")
    if wanted in datasets and st.session_state.get("dataset_id") not in datasets:
        st.session_state["dataset_id"] = wanted  # a reload keeps the dataset the URL names
    dataset_id = st.sidebar.selectbox(
        "Dataset", list(datasets), format_func=lambda i: datasets[i]["name"], key="dataset_id"
    )
    with st.sidebar.expander("New dataset", expanded=not datasets):
        with st.form("new_dataset", clear_on_submit=True):
            dataset_name = st.text_input("Name", key="new_dataset_name").strip()
            fields = {
                "name": dataset_name,
                "trigger_word": st.text_input("Trigger word", key="new_dataset_trigger").strip() or None,
                "class_word": st.text_input("Class word", key="new_dataset_class").strip() or None,
                "target_model": st.selectbox("Target model", TARGET_MODELS, key="new_dataset_target"),
            }
            if st.form_submit_button("Create dataset"):
                if dataset_name:
                    _create(lambda: client.create_dataset(workspace_id, **fields), "dataset_id")
                else:
                    st.error("A name cannot be empty or only spaces.")
    set_query_param("dataset", dataset_id)
    return datasets.get(dataset_id) if dataset_id else None


def _create(call: Any, select_key: str) -> None:
    try:
        created = call()
    except ApiError as exc:
        st.error(one_line(exc))
        return
    # A widget's value can be set only before it is drawn: remember it and rerun.
    st.session_state["pending_select"] = (select_key, created["id"])
    st.rerun()


def apply_pending_selection() -> None:
    pending = st.session_state.pop("pending_select", None)
    if pending:
        st.session_state[pending[0]] = pending[1]


def navigation() -> str:
    """The page picker; the URL's `page` keeps it across reloads."""
    wanted = query_param("page")
    if "nav" not in st.session_state and wanted in PAGES:
        st.session_state["nav"] = wanted
    page = st.sidebar.radio("Page", list(PAGES), key="nav")
    set_query_param("page", page)
    return str(page)


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


def wait_for_api(exc: ApiError) -> None:
    """The API is away: say so in one line and try again after 1, 2, 4 … up to 30 seconds."""
    failures = int(st.session_state.get(AWAY_KEY, 0)) + 1
    st.session_state[AWAY_KEY] = failures
    delay = min(2 ** (failures - 1), MAX_RETRY_S)
    st.error(
        f"The API is not available: {one_line(exc)}. Trying again in {delay} s.", icon=":material/cloud_off:"
    )
    st.session_state["retry_armed"] = True

    @st.fragment(run_every=delay)
    def retry() -> None:
        if st.session_state.pop("retry_armed", False):
            return  # drawn with the page: the timer has not fired yet
        st.rerun(scope="app")

    retry()


def main() -> None:
    st.set_page_config(page_title="LoRA Forge", page_icon=":material/photo_library:", layout="wide")
    st.html(STYLE)
    apply_pending_selection()
    try:
        dataset = sidebar()
    except ApiError as exc:
        if exc.status == 401:
            if session_token():
                log_out()  # a token the API no longer takes
            login_box(refused=True)
            st.info("Log in with your API token to see your workspaces.")
        elif exc.status == 0:
            wait_for_api(exc)
        else:
            st.error(f"The API refused: {one_line(exc)}")
        return
    st.session_state[AWAY_KEY] = 0
    page = navigation()
    login_box(refused=False)
    if dataset is None:
        st.title("LoRA Forge")
        st.info("Pick or create a dataset in the sidebar.")
        return
    review_state(dataset["id"])  # a new dataset drops the open picture and the picks of the last one
    st.title(dataset["name"])
    trigger = dataset["trigger_word"] or "no trigger word"
    st.caption(f"{trigger} · {dataset['class_word'] or 'no class word'} · {dataset['target_model']}")
    with failures_as_messages(f"The {page} page failed"):
        PAGES[page](dataset)


main()
