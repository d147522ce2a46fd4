"""Uploads and pipeline runs, with live progress read by polling the task through the API."""

from __future__ import annotations

import json
from typing import Any

import streamlit as st

from services.ui.client import FINISHED, ApiError
from services.ui.state import api

STAGES = ["curate", "caption", "bucket", "export", "build"]
EXPORT_FORMATS = ["kohya", "ai-toolkit", "onetrainer", "simpletuner", "hf", "replicate"]
WATCH_KEY = "watch_task"


def show_pipeline(dataset: dict[str, Any]) -> None:
    show_upload(dataset)
    st.divider()
    show_runs(dataset)
    st.divider()
    show_progress()
    show_recent_tasks(dataset)


def show_upload(dataset: dict[str, Any]) -> None:
    st.subheader("Upload")
    files = st.file_uploader("Pictures or zip archives", accept_multiple_files=True, key="uploads", type=None)
    if st.button("Upload and ingest", key="upload", disabled=not files):
        payload = [(f.name, f.getvalue(), f.type or "application/octet-stream") for f in files or []]
        _start(lambda: api().upload(dataset["id"], payload))


def show_runs(dataset: dict[str, Any]) -> None:
    st.subheader("Run a stage")
    stage_column, params_column = st.columns([1, 2])
    stage = stage_column.selectbox("Stage", STAGES, key="stage")
    params: dict[str, Any] = {}
    if stage == "export":
        params["format"] = stage_column.selectbox("Format", EXPORT_FORMATS, key="export_format")
    extra = params_column.text_area("Extra parameters (JSON)", value="{}", key="run_params", height=100)
    if st.button("Start", key="start_run", type="primary"):
        try:
            params |= json.loads(extra or "{}")
        except json.JSONDecodeError as exc:
            st.error(f"Parameters are not valid JSON: {exc}")
            return
        _start(lambda: api().start_run(dataset["id"], stage, params))


def _start(call: Any) -> None:
    try:
        accepted = call()
    except ApiError as exc:
        st.error(exc.message)
        return
    st.session_state[WATCH_KEY] = accepted["task_id"]
    st.toast(f"{accepted['kind']} started")


def show_progress() -> None:
    task_id = st.session_state.get(WATCH_KEY)
    if not task_id:
        return
    running = api().task(task_id)["status"] not in FINISHED

    # Only the progress block reruns while a task runs, so the rest of the page stays still.
    @st.fragment(run_every=1.0 if running else None)
    def progress_block() -> None:
        task = api().task(task_id)
        st.markdown(f"**{task['kind']}** · {task['status']}")
        st.progress(min(max(task["progress"], 0.0), 1.0), text=f"{task['done']} / {task['total'] or '?'}")
        if task["status"] == "FAILED":
            st.error(task["error"] or "failed")
        elif task["status"] == "COMPLETED":
            st.success("Done")
            if task["result"]:
                with st.expander("Result"):
                    st.json(task["result"])
        if running and task["status"] in FINISHED:
            st.rerun()  # refresh the whole page once: the grid and statistics changed

    progress_block()


def show_recent_tasks(dataset: dict[str, Any]) -> None:
    tasks = api().tasks(dataset["id"], limit=10)
    if tasks:
        st.subheader("Recent runs")
        rows = [
            {
                "kind": t["kind"],
                "status": t["status"],
                "done": t["done"],
                "total": t["total"],
                "started": t["started_at"],
            }
            for t in tasks
        ]
        st.dataframe(rows, hide_index=True)
