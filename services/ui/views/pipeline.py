"""The pipeline page: upload pictures and run the whole pipeline from a form built from the build options,
follow each stage live (the run id is in the URL, so a reload re-attaches), cancel, read the results as
tables, and see recent runs with their duration and error."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

import pandas as pd
import streamlit as st

from services.ui.client import FINISHED, ApiError
from services.ui.state import api, attempt, one_line, query_param, set_query_param
from services.ui.views.forms import option_widgets

STAGES = ["curate", "caption", "bucket", "export", "ingest"]
STAGE_ORDER = ["ingest", "curate", "caption", "bucket", "export"]
BUILD_MAIN_FIELDS = ("trigger", "class_word", "target", "captioner", "format", "repeats")
BUILD_HIDDEN_FIELDS = ("sources", "upload_batch")
RUN_PARAM = "run"
POLL_S = 1.0
VALIDATION_LINE = re.compile(
    r"^(?P<severity>\w+): (?P<check>[\w-]+)(?: \[(?P<image>[0-9a-f]+)\])?: (?P<message>.*)$"
)
COPY_REASON = re.compile(r"^(?P<kind>exact|near) copy of (?P<kept>.+?)(?: \(.*\))?$")


def show_pipeline(dataset: dict[str, Any]) -> None:
    show_progress(dataset)
    build, stage = st.tabs(["Run the whole pipeline", "Run one stage"])
    with build:
        show_build_form(dataset)
    with stage:
        show_stage_form(dataset)
    show_recent_runs(dataset)


def show_build_form(dataset: dict[str, Any]) -> None:
    """Drop pictures, set the build options, run: the files are staged, then one build run ingests them."""
    schema = _form_schema("build")
    if schema is None:
        return
    files = st.file_uploader(
        "Pictures, zip archives or URL lists (drag and drop)",
        accept_multiple_files=True,
        key=f"{dataset['id']}-uploads",
    )
    with st.form(key=f"{dataset['id']}-build-form", border=True):
        main = {
            name: schema["properties"][name] for name in BUILD_MAIN_FIELDS if name in schema["properties"]
        }
        options = option_widgets(
            {"properties": main}, key=f"{dataset['id']}_build", defaults=_defaults(dataset)
        )
        with st.expander("More options"):
            rest = {
                name: field
                for name, field in schema["properties"].items()
                if name not in main and name not in BUILD_HIDDEN_FIELDS
            }
            options |= option_widgets({"properties": rest}, key=f"{dataset['id']}_build")
        started = st.form_submit_button("Upload and run the pipeline", type="primary", key="build_start")
    if not started:
        return
    if not files:
        st.error("Add pictures first: drop them on the box above.")
        return
    payload = [(f.name, f.getvalue(), f.type or "application/octet-stream") for f in files]
    with st.spinner(f"Uploading {len(payload)} file(s)…"):
        staged = attempt(lambda: api().stage_uploads(dataset["id"], payload))
    if staged is None:
        return
    accepted = attempt(
        lambda: api().start_run(dataset["id"], "build", options | {"upload_batch": staged["upload_batch"]})
    )
    if accepted is not None:
        _watch(accepted["task_id"])


def _defaults(dataset: dict[str, Any]) -> dict[str, Any]:
    """The dataset's own trigger, class word and target fill the form's first fields."""
    return {
        "trigger": dataset.get("trigger_word"),
        "class_word": dataset.get("class_word"),
        "target": dataset.get("target_model"),
    }


def show_stage_form(dataset: dict[str, Any]) -> None:
    stage = st.selectbox("Stage", STAGES, key="stage")
    schema = _form_schema(stage)
    if schema is None:
        return
    with st.form(key=f"run_form_{stage}"):
        options = option_widgets(schema, key=f"{dataset['id']}_{stage}")
        started = st.form_submit_button("Start", type="primary", key="run_start")
    if started:
        accepted = attempt(lambda: api().start_run(dataset["id"], stage, options))
        if accepted is not None:
            _watch(accepted["task_id"])


def _form_schema(stage: str) -> dict[str, Any] | None:
    try:
        return _run_form(stage)
    except ApiError as exc:
        st.error(f"Cannot build the form: {one_line(exc)}")
        return None


@st.cache_data(ttl=300, show_spinner=False)
def _run_form(stage: str) -> dict[str, Any]:
    return api().run_form(stage)


def _watch(task_id: str) -> None:
    set_query_param(RUN_PARAM, task_id)
    st.rerun()


def show_progress(dataset: dict[str, Any]) -> None:
    """The run named in the URL: stage by stage while it runs, its results once it ends."""
    task_id = query_param(RUN_PARAM)
    if not task_id:
        return
    try:
        task = api().task(task_id)
    except ApiError as exc:
        if exc.status == 404:
            set_query_param(RUN_PARAM, None)
            st.info("That run no longer exists.")
            return
        raise
    if task["dataset_id"] != dataset["id"]:
        return  # the URL's run is another dataset's: this page shows only this one's
    running = task["status"] not in FINISHED

    @st.fragment(run_every=POLL_S if running else None)
    def progress_block() -> None:
        try:
            current = api().task(task_id)
            stages = [t for t in api().tasks(dataset["id"], limit=50) if t.get("parent_id") == task_id]
        except ApiError as exc:
            if exc.status == 0:
                st.rerun(scope="app")  # the app waits for the API with a growing interval
            st.error(one_line(exc))
            return
        with st.container(border=True, key="run_progress"):
            show_run(current, stages)
        if running and current["status"] in FINISHED:
            st.rerun(scope="app")  # refresh the whole page once: the grid and statistics changed

    progress_block()


def show_run(task: dict[str, Any], stages: list[dict[str, Any]]) -> None:
    title, close = st.columns([5, 1])
    title.markdown(f"**{task['kind']}** · {task['status']} · {_duration(task)}")
    if task["status"] in FINISHED:
        close.button("Close", key="run_close", on_click=set_query_param, args=(RUN_PARAM, None))
    elif close.button("Cancel", key=f"cancel_{task['id']}"):
        attempt(lambda: api().cancel(task["id"]))
    st.progress(_fraction(task), text=f"{task['done']} / {task['total'] or '?'}")
    for stage in sorted(
        stages, key=lambda t: STAGE_ORDER.index(t["kind"]) if t["kind"] in STAGE_ORDER else 99
    ):
        label = f"{stage['kind']} · {stage['status'].lower()} · {stage['done']} / {stage['total'] or '?'}"
        st.progress(_fraction(stage), text=label)
    if task["status"] in ("FAILED", "CRASHED", "CANCELLED"):
        st.error(f"{task['status'].lower()}: {(task['error'] or 'no reason recorded').splitlines()[0]}")
    elif task["status"] == "COMPLETED":
        st.success(f"{task['kind']} finished")
        show_result(task, stages)


def _fraction(task: dict[str, Any]) -> float:
    return min(max(float(task["progress"] or 0.0), 0.0), 1.0)


def show_result(task: dict[str, Any], stages: list[dict[str, Any]]) -> None:
    """A run's result as figures and tables: failures with reasons, copies beside the kept one, warnings."""
    result = task.get("result") or {}
    figures = {k: v for k, v in result.items() if isinstance(v, int | float) and not isinstance(v, bool)}
    if figures:
        columns = st.columns(min(len(figures), 6))
        for index, (name, value) in enumerate(figures.items()):
            columns[index % len(columns)].metric(name.replace("_", " "), value)
    not_exported = result.get("not_exported") or []
    failed = [r for r in not_exported if r["reason"].startswith("failed to ingest")]
    copies = [(r, COPY_REASON.match(r["reason"])) for r in not_exported]
    duplicates = [
        {"file": r["filename"], "copy of (kept)": m["kept"], "kind": m["kind"]} for r, m in copies if m
    ]
    others = [r for r, m in copies if not m and r not in failed]
    if failed:
        st.markdown("**Failed files**")
        _table(
            [
                {"file": r["filename"], "reason": r["reason"].removeprefix("failed to ingest: ")}
                for r in failed
            ]
        )
    if duplicates:
        st.markdown("**Duplicates, beside the copy kept**")
        _table(duplicates)
    if others:
        st.markdown("**Left out**")
        _table([{"file": r["filename"], "reason": r["reason"]} for r in others])
    export = next((s for s in stages if s["kind"] == "export"), task if task["kind"] == "export" else None)
    if export:
        show_export_warnings(export.get("result") or {})
    for note in result.get("notes") or []:
        st.caption(note)
    for name, value in result.items():
        if name in ("not_exported", "notes") or not isinstance(value, list) or not value:
            continue
        if all(isinstance(row, dict) for row in value):
            st.markdown(f"**{name.replace('_', ' ')}**")
            _table(value)


def show_export_warnings(result: dict[str, Any]) -> None:
    names = _filenames(result)
    rows = []
    for line in str(result.get("validation") or "").splitlines():
        match = VALIDATION_LINE.match(line.strip())
        if match and match["severity"] in ("error", "warning"):
            image = match["image"]
            rows.append(
                {
                    "file": names.get(image, image or "(whole export)"),
                    "problem": match["check"],
                    "severity": match["severity"],
                    "message": match["message"],
                }
            )
    for warning in result.get("warnings") or []:
        rows.append({"file": "", "problem": "warning", "severity": "warning", "message": str(warning)})
    if rows:
        st.markdown("**Export warnings**")
        _table(rows)


def _filenames(result: dict[str, Any]) -> dict[str, str]:
    dataset_id = (result.get("object_key") or "").split("/")[1:2]
    if not dataset_id:
        return {}
    try:
        cards = api().cards(dataset_id[0], limit=500)["data"]
    except ApiError:
        return {}
    return {card["id"]: card["original_filename"] for card in cards}


def show_recent_runs(dataset: dict[str, Any]) -> None:
    try:
        tasks = api().tasks(dataset["id"], limit=30)
    except ApiError as exc:
        st.error(f"Cannot list the runs: {one_line(exc)}")
        return
    runs = [t for t in tasks if not t.get("parent_id")][:10]
    if not runs:
        return
    st.subheader("Recent runs")
    rows = [
        {
            "run": t["kind"],
            "status": t["status"],
            "started": _when(t["started_at"] or t["created_at"]),
            "duration": _duration(t),
            "pictures": f"{t['done']} / {t['total']}",
            "error": (t["error"] or "").splitlines()[0] if t["error"] else "",
        }
        for t in runs
    ]
    _table(rows)
    active = [t for t in runs if t["status"] not in FINISHED]
    watched = query_param(RUN_PARAM)
    for task in active:
        if task["id"] != watched:
            st.button(
                f"Follow the running {task['kind']}",
                key=f"attach-{task['id']}",
                on_click=set_query_param,
                args=(RUN_PARAM, task["id"]),
            )


def _table(rows: list[dict[str, Any]]) -> None:
    """Rows as an HTML table (its text is on the page: readable, selectable, and findable in tests)."""
    st.table(pd.DataFrame(rows), hide_index=True)


def _when(stamp: str | None) -> str:
    if not stamp:
        return ""
    moment = datetime.fromisoformat(stamp.replace("Z", "+00:00")).astimezone()
    return moment.strftime("%d %b %H:%M:%S")


def _duration(task: dict[str, Any]) -> str:
    start = task.get("started_at")
    if not start:
        return "never started" if task.get("finished_at") else "waiting"
    began = datetime.fromisoformat(start.replace("Z", "+00:00"))
    end = task.get("finished_at")
    ended = datetime.fromisoformat(end.replace("Z", "+00:00")) if end else datetime.now(began.tzinfo)
    seconds = max(0, round((ended - began).total_seconds()))
    return f"{seconds // 60}m {seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"
