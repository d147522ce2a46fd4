"""Batch work over the grid: pick pictures (or take everything the filters match), keep or reject them at
once, and find/replace, prepend or append in their captions; all through the dataset-scoped bulk API."""

from __future__ import annotations

from typing import Any

import streamlit as st

from services.ui.client import ApiError
from services.ui.state import Review, api, one_line

OPERATIONS = {"replace": "Find and replace", "prepend": "Prepend", "append": "Append"}
SCOPES = ("picked", "filter")
RESULT_KEY = "bulk_result"


def show_bulk_bar(
    dataset: dict[str, Any],
    review: Review,
    filters: dict[str, Any],
    matching: int,
    cards: list[dict[str, Any]],
) -> None:
    dataset_id = dataset["id"]
    result = st.session_state.pop(RESULT_KEY, None)
    with st.expander(
        f"Bulk edit · {len(review.picked)} picked", expanded=bool(review.picked) or bool(result)
    ):
        if result:
            getattr(st, result[0])(result[1])
        scope = st.radio(
            "Apply to",
            SCOPES,
            format_func=lambda s: (
                f"the {len(review.picked)} picked"
                if s == "picked"
                else f"all {matching} matching the filters"
            ),
            horizontal=True,
            key=f"{dataset_id}-bulk-scope",
        )
        row = st.container(horizontal=True, gap="small")
        with row:
            st.button("Pick this page", key="bulk_pick_page", on_click=_pick, args=(review, cards, True))
            st.button("Clear picks", key="bulk_clear", on_click=_pick, args=(review, cards, False))
            st.button(
                "Keep all",
                key="bulk_keep",
                on_click=_bulk_review,
                args=(dataset_id, review, scope, filters, "kept"),
            )
            st.button(
                "Reject all",
                key="bulk_reject",
                on_click=_bulk_review,
                args=(dataset_id, review, scope, filters, "rejected"),
            )
        with st.form(key=f"{dataset_id}-bulk-caption", clear_on_submit=False, border=False):
            operation, find, text = st.columns([1.2, 2, 2])
            picked_operation = operation.selectbox(
                "Caption edit", list(OPERATIONS), format_func=OPERATIONS.__getitem__, key="bulk_operation"
            )
            find_text = find.text_input("Find (replace only)", key="bulk_find")
            new_text = text.text_input("Text", key="bulk_text")
            if st.form_submit_button("Apply to captions", key="bulk_apply"):
                _bulk_captions(dataset_id, review, scope, filters, picked_operation, find_text, new_text)


def _pick(review: Review, cards: list[dict[str, Any]], picked: bool) -> None:
    ids = {card["id"] for card in cards}
    review.picked = review.picked | ids if picked else set()


def _selection(review: Review, scope: str, filters: dict[str, Any]) -> dict[str, Any] | None:
    if scope == "filter":
        return {"filter": {name: value for name, value in filters.items() if value}}
    if not review.picked:
        st.session_state[RESULT_KEY] = ("warning", "Pick some pictures first (or apply to the filter).")
        return None
    return {"image_ids": sorted(review.picked)}


def _bulk_review(dataset_id: str, review: Review, scope: str, filters: dict[str, Any], status: str) -> None:
    selection = _selection(review, scope, filters)
    if selection is None:
        return
    try:
        done = api().bulk_review(dataset_id, selection, status)
    except ApiError as exc:
        st.session_state[RESULT_KEY] = ("error", f"Nothing changed: {one_line(exc)}")
        return
    st.session_state[RESULT_KEY] = ("success", f"{done['changed']} picture(s) marked {status}")


def _bulk_captions(
    dataset_id: str,
    review: Review,
    scope: str,
    filters: dict[str, Any],
    operation: str,
    find: str,
    text: str,
) -> None:
    if operation == "replace" and not find.strip():
        st.session_state[RESULT_KEY] = ("error", "Type the text to find.")
        st.rerun()
    if operation != "replace" and not text.strip():
        st.session_state[RESULT_KEY] = ("error", "Type the text to add: it cannot be empty or only spaces.")
        st.rerun()
    selection = _selection(review, scope, filters)
    if selection is None:
        st.rerun()
    try:
        done = api().bulk_captions(dataset_id, selection, operation, text, find=find or None)
    except ApiError as exc:
        st.session_state[RESULT_KEY] = ("error", f"No caption changed: {one_line(exc)}")
        st.rerun()
    # Caption boxes hold what they showed before: drop them so they show the new text.
    for key in [key for key in st.session_state if str(key).startswith("caption-")]:
        del st.session_state[key]
    skipped = f", {done['skipped']} unchanged" if done["skipped"] else ""
    st.session_state[RESULT_KEY] = ("success", f"{done['changed']} caption(s) changed{skipped}")
    st.rerun()
