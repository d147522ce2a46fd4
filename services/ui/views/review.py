"""The review page: filters, the thumbnail grid with captions, batch selection with bulk edits, and the
detail panel (views/detail.py: large preview, badges, keep/reject, caption autosave) driven by the keyboard.

Every write names the dataset shown (the API's dataset-scoped bulk routes), and the open picture and the
picks live in a `Review` bound to that dataset, so nothing done here can land on another dataset.
"""

from __future__ import annotations

import math
from typing import Any

import streamlit as st

from services.ui.client import ApiError
from services.ui.keyboard import review_shortcuts
from services.ui.state import (
    Review,
    api,
    caller_key,
    one_line,
    review_state,
    status_badge,
    thumbnail,
)
from services.ui.views.bulk import show_bulk_bar
from services.ui.views.detail import escape_markdown, show_detail
from services.ui.views.identity import show_reference_faces

STATUSES = ["pending", "kept", "rejected", "duplicate"]
THUMB_SIZES = {"S": 5, "M": 3, "L": 2}
"""Thumbnail size -> pictures per row (each fills its column)."""
PAGE_SIZE = 24


def show_review(dataset: dict[str, Any]) -> None:
    review_shortcuts()  # first: the keys work as soon as the page shows
    review = review_state(dataset["id"])
    filters = show_filters(dataset["id"])
    grid, detail = st.columns([3, 2], gap="medium")
    with grid:
        listing = show_grid(dataset, review, filters)
    with detail, st.container(key="detail_panel"):
        if listing is not None:
            show_detail(dataset, review, listing.get("checks", {}))


def show_filters(dataset_id: str) -> dict[str, Any]:
    """The filter row; its widgets are keyed by dataset, so one dataset's filters never apply to another."""
    key = f"{dataset_id}-filter"
    name, text, statuses, issue, bucket = st.columns([2, 2, 2, 1.5, 1.5])
    choices = st.session_state.get(f"{key}-choices", {"issues": [], "buckets": []})
    return {
        "filename": name.text_input("File name", key=f"{key}-filename", placeholder="search").strip(),
        "caption": text.text_input("Caption holds", key=f"{key}-caption", placeholder="word").strip(),
        "statuses": statuses.multiselect("Status", STATUSES, key=f"{key}-status"),
        "issue": issue.selectbox("Issue", ["", *choices["issues"]], key=f"{key}-issue") or None,
        "bucket": bucket.selectbox("Bucket", ["", *choices["buckets"]], key=f"{key}-bucket") or None,
    }


def show_grid(dataset: dict[str, Any], review: Review, filters: dict[str, Any]) -> dict[str, Any] | None:
    dataset_id = dataset["id"]
    size_col, page_col, count_col = st.columns([2, 1, 1])
    size = size_col.segmented_control(
        "Thumbnails", list(THUMB_SIZES), default="M", key="thumb_size", selection_mode="single"
    )
    columns = THUMB_SIZES[size or "M"]
    page = int(page_col.number_input("Page", min_value=1, value=1, step=1, key=f"{dataset_id}-page"))
    try:
        listing = api().cards(dataset_id, filters=filters, offset=(page - 1) * PAGE_SIZE, limit=PAGE_SIZE)
    except ApiError as exc:
        st.error(f"Cannot list the pictures: {one_line(exc)}")
        return None
    st.session_state[f"{dataset_id}-filter-choices"] = {
        "issues": listing["issues"],
        "buckets": listing["buckets"],
    }
    pages = max(1, math.ceil(listing["count"] / PAGE_SIZE))
    count_col.metric("Pictures", listing["count"], help=f"page {min(page, pages)} of {pages}")
    cards = listing["data"]
    review.order = [card["id"] for card in cards]
    if review.open_id is None and cards:
        review.open_id = cards[0]["id"]
    show_bulk_bar(dataset, review, filters, listing["count"], cards)
    show_reference_faces(dataset, review)
    if not cards:
        if listing["count"]:
            st.info(f"Page {page} is past the end: there are {pages} page(s). Go back to page {pages}.")
        elif any(filters.values()):
            st.info("No picture matches these filters.")
        else:
            st.info("No pictures yet: upload some on the Pipeline page.")
        return listing
    caller = caller_key()
    with st.container(key="grid_panel"):
        for start in range(0, len(cards), columns):
            for column, card in zip(st.columns(columns), cards[start : start + columns], strict=False):
                with column:
                    show_card(dataset_id, review, card, caller)
    return listing


def show_card(dataset_id: str, review: Review, card: dict[str, Any], caller: str) -> None:
    image_id = card["id"]
    opened = image_id == review.open_id
    with st.container(border=True, key=f"card-{image_id}{'-open' if opened else ''}"):
        if card["has_thumbnail"]:
            st.image(thumbnail(caller, image_id), width="stretch")
        st.markdown(f"**{escape_markdown(card['original_filename'])}**")
        st.caption(escape_markdown(card["caption"]) if card["caption"] else "_no caption_")
        badges = st.container(horizontal=True, gap="small")
        with badges:
            status_badge(card["status"])
            for issue in card["issues"]:
                st.badge(issue, color="red", icon=":material/warning:")
        with st.container(horizontal=True, gap="small", vertical_alignment="center"):
            st.checkbox(
                "Pick",
                value=image_id in review.picked,
                key=f"pick-{dataset_id}-{image_id}",
                on_change=_toggle_pick,
                args=(review, image_id),
            )
            st.button(
                "Open",
                key=f"open-{image_id}",
                on_click=_open,
                args=(review, image_id),
                type="primary" if opened else "secondary",
            )


def _toggle_pick(review: Review, image_id: str) -> None:
    review.picked ^= {image_id}


def _open(review: Review, image_id: str) -> None:
    review.open_id = image_id
