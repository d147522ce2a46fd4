"""Uploads and pipeline runs, with live progress read by polling the task through the API."""

from __future__ import annotations

from typing import Any

import streamlit as st

from services.ui.client import FINISHED, ApiError
from services.ui.state import api

STAGES = ["build", "curate", "caption", "bucket", "export", "ingest"]
STAGE_LABELS = {"build": "whole pipeline", "ingest": "ingest (URLs or server import folders)"}
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
    stage = st.selectbox("Stage", STAGES, key="stage", format_func=lambda key: STAGE_LABELS.get(key, key))
    try:
        schema = _run_form(stage)
    except ApiError as exc:
        st.error(exc.message)
        return
    with st.form(key=f"run_form_{stage}"):
        options = option_widgets(schema, key=f"{dataset['id']}_{stage}")
        started = st.form_submit_button("Start", type="primary", key="run_start")
    if started:
        _start(lambda: api().start_run(dataset["id"], stage, options))


@st.cache_data(ttl=300, show_spinner=False)
def _run_form(stage: str) -> dict[str, Any]:
    return api().run_form(stage)


def option_widgets(schema: dict[str, Any], *, key: str) -> dict[str, Any]:
    """One widget per field of a stage's options model (its JSON schema, from the API's OpenAPI document).

    Only fields the user set are sent, so the model's own defaults apply to the rest.
    """
    chosen: dict[str, Any] = {}
    columns = st.columns(2)
    for index, (name, field) in enumerate(schema.get("properties", {}).items()):
        if name == "upload_batch":
            continue  # set by the upload button, not typed by a user
        label = name.replace("_", " ")
        help_text = field.get("description")
        kinds = _kinds(field)
        default = field.get("default")
        widget_key = f"{key}_{name}"
        column = columns[index % 2]
        if "enum" in kinds:
            values = kinds["enum"]
            choices = values if default in values else ["(default)", *values]
            picked = column.selectbox(
                label,
                choices,
                index=choices.index(default) if default in choices else 0,
                help=help_text,
                key=widget_key,
            )
            if picked != "(default)" and picked != default:
                chosen[name] = picked
        elif "boolean" in kinds:
            if column.checkbox(label, value=bool(default), help=help_text, key=widget_key) != bool(default):
                chosen[name] = not bool(default)
        elif "array" in kinds:
            text = column.text_area(
                label, help=(help_text or "") + " One per line.", key=widget_key, height=80
            )
            lines = [line.strip() for line in text.splitlines() if line.strip()]
            if lines:
                chosen[name] = lines
        elif "object" in kinds:
            text = column.text_area(
                label, help=(help_text or "") + " One KEY=VALUE per line.", key=widget_key
            )
            pairs = dict(line.split("=", 1) for line in text.splitlines() if "=" in line)
            if pairs:
                chosen[name] = {k.strip(): _number_or_text(v.strip()) for k, v in pairs.items()}
        else:
            hint = "" if default is None else f" (default {default})"
            text = column.text_input(label + hint, help=help_text, key=widget_key).strip()
            if text:
                chosen[name] = _number_or_text(text) if kinds.keys() & {"integer", "number"} else text
    return chosen


def _kinds(field: dict[str, Any]) -> dict[str, Any]:
    """The JSON types a field accepts (anyOf flattened), with its enum values under "enum"."""
    kinds: dict[str, Any] = {}
    for option in field.get("anyOf", [field]):
        if "enum" in option:
            kinds["enum"] = option["enum"]
        elif "type" in option and option["type"] != "null":
            kinds[option["type"]] = option
    return kinds


def _number_or_text(text: str) -> Any:
    for convert in (int, float):
        try:
            return convert(text)
        except ValueError:
            continue
    return {"true": True, "false": False}.get(text.lower(), text)


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
        if task["status"] in ("FAILED", "CRASHED", "CANCELLED"):
            st.error(f"{task['status'].lower()}: {task['error'] or 'no reason recorded'}")
        elif st.button("Cancel", key=f"cancel_{task_id}"):
            try:
                api().cancel(task_id)
            except ApiError as exc:
                st.error(exc.message)
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
