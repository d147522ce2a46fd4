"""The review page: filters, the thumbnail grid with captions, batch selection with bulk edits, and the
detail panel (large preview, badges, keep/reject, caption autosave) driven by the keyboard.

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
    original,
    review_state,
    status_badge,
    thumbnail,
)
from services.ui.views.bulk import show_bulk_bar
from services.ui.views.identity import identity_box, identity_of, show_identity_badge, show_reference_faces
from services.ui.views.preview import annotated_preview, face_boxes

STATUSES = ["pending", "kept", "rejected", "duplicate"]
THUMB_SIZES = {"S": 5, "M": 3, "L": 2}
"""Thumbnail size -> pictures per row (each fills its column)."""
PAGE_SIZE = 24
FLASH_KEY = "review_flash"


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
        st.markdown(f"**{_escape(card['original_filename'])}**")
        st.caption(_escape(card["caption"]) if card["caption"] else "_no caption_")
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


def show_detail(dataset: dict[str, Any], review: Review, checks: dict[str, Any]) -> None:
    flash = st.session_state.pop(FLASH_KEY, None)
    if flash:
        getattr(st, flash[0])(flash[1])
    image_id = review.open_id
    if image_id is None:
        st.caption("Open a picture to review it and edit its caption.")
        return
    try:
        image = api().image(image_id)
    except ApiError as exc:
        st.warning(f"Cannot show this picture: {one_line(exc)}")
        return
    if image["dataset_id"] != dataset["id"]:  # never show (or edit) a picture of another dataset
        review.open_id = None
        st.warning("That picture belongs to another dataset.")
        return
    position = review.order.index(image_id) + 1 if image_id in review.order else 0
    st.markdown(f"### {_escape(image['original_filename'])}")
    header = st.container(horizontal=True, gap="small")
    with header:
        status_badge(image["status"])
        if position:
            st.caption(f"{position} of {len(review.order)} on this page")
    show_review_buttons(dataset["id"], review, image)
    show_preview(image)
    show_caption(dataset["id"], image)
    show_badges(image, checks)
    show_identity_badge(image)
    show_facts(image)


def show_review_buttons(dataset_id: str, review: Review, image: dict[str, Any]) -> None:
    image_id = image["id"]
    reason = st.text_input(
        "Reason",
        key=f"reason-{image_id}",  # one per picture: a reason typed for one never carries over
        placeholder=image["status_reason"] or "why keep or reject (optional)",
    )
    keep, reject = st.columns(2)
    keep.button(
        "Keep (a)",
        key="kb_keep",
        type="primary",
        on_click=_review,
        args=(dataset_id, review, image_id, "kept", reason),
        width="stretch",
    )
    reject.button(
        "Reject (x)",
        key="kb_reject",
        on_click=_review,
        args=(dataset_id, review, image_id, "rejected", reason),
        width="stretch",
    )
    st.caption("Keys: j/k next/previous · a keep · x reject · c caption · Ctrl+Enter save and next")
    prev, next_ = st.columns(2)
    prev.button("◀ Previous (k)", key="kb_prev", on_click=review.step, args=(-1,), width="stretch")
    next_.button("Next (j) ▶", key="kb_next", on_click=review.step, args=(1,), width="stretch")


def _review(dataset_id: str, review: Review, image_id: str, status: str, reason: str) -> None:
    reason = st.session_state.get(f"reason-{image_id}", reason)
    try:
        api().bulk_review(dataset_id, {"image_ids": [image_id]}, status, reason.strip() or None)
    except ApiError as exc:
        st.session_state[FLASH_KEY] = ("error", f"Not saved: {one_line(exc)}")
        return
    st.session_state[FLASH_KEY] = ("success", f"Marked {status}")
    review.step(1)


def show_preview(image: dict[str, Any]) -> None:
    bucket = image.get("bucket") or {}
    try:
        data = original(caller_key(), image["id"])
        matched = identity_box(image)
        compared = identity_of(image)
        same = bool(compared and compared["distance"] <= compared.get("max_distance", 0.6))
        preview = annotated_preview(
            data,
            tuple(bucket.get("box") or ()) or None,
            face_boxes(image),
            identity=(matched, same) if matched else None,
        )
    except ApiError as exc:
        st.warning(f"No preview: {one_line(exc)}")
        return
    except OSError as exc:
        st.warning(f"No preview: the picture cannot be decoded ({one_line(exc)})")
        return
    legend = []
    if bucket.get("box"):
        legend.append(f"blue: crop to the {bucket['width']}×{bucket['height']} bucket")
    if image.get("faces"):
        legend.append(f"amber: {len(image['faces'])} face(s)")
    if matched:
        legend.append(
            "green: the face matching the reference faces" if same else "red: closest face, another person"
        )
    st.image(preview, caption=" · ".join(legend) or None, width="stretch")


def show_caption(dataset_id: str, image: dict[str, Any]) -> None:
    active = next((c for c in image["captions"] if c["is_active"]), None)
    # Keyed by the caption row: any save (here or in bulk) makes a new row, so the box never keeps
    # showing, and later sends back, text the catalog no longer holds.
    key = f"caption-{image['id']}-{active['id'] if active else 'none'}"
    with st.container(key="caption_box"):
        st.text_area(
            "Caption (saves when you leave it; Ctrl+Enter saves and opens the next)",
            value=active["text"] if active else "",
            key=key,
            height=90,
            on_change=_save_caption,
            args=(dataset_id, image["id"], key),
        )
    history = [c for c in image["captions"] if not c["is_active"]]
    if history:
        with st.expander(f"Caption history ({len(history)})"):
            for caption in reversed(history):
                label = "edited" if caption["edited"] else caption["source_model"] or caption["variant"]
                st.caption(f"{caption['variant']} · {label}")
                st.text(caption["text"])


def _save_caption(dataset_id: str, image_id: str, key: str) -> None:
    text = st.session_state.get(key, "")
    if not text.strip():
        st.session_state[FLASH_KEY] = ("error", "A caption cannot be empty or only spaces: not saved.")
        return
    try:
        api().bulk_captions(dataset_id, {"image_ids": [image_id]}, "set", text)
    except ApiError as exc:
        st.session_state[FLASH_KEY] = ("error", f"Caption not saved: {one_line(exc)}")
        return
    st.session_state[FLASH_KEY] = ("success", "Caption saved")


def show_badges(image: dict[str, Any], checks: dict[str, Any]) -> None:
    """Each check's score against its threshold: red at or over it, amber within 80 %, green below."""
    scores: dict[str, float] = image["metadata"].get("scores") or {}
    issues = set(image["metadata"].get("issues") or [])
    if image["status_reason"]:
        manual = " (set by hand)" if image["status_manual"] else ""
        st.caption(f"Reason: {_escape(image['status_reason'])}{manual}")
    if not scores:
        st.caption("No quality scores yet: run curation.")
        return
    badges = []
    for name, score in sorted(scores.items()):
        check = checks.get(name) or {}
        threshold = float(check.get("threshold", 0.5))
        colour = "red" if name in issues or score >= threshold else "orange"
        if name not in issues and score < 0.8 * threshold:
            colour = "green"
        badges.append(f":{colour}-badge[{name} {score:.2f} / {threshold:.2f}]")
    st.markdown(" ".join(badges), help="score / threshold: at or over the threshold is an issue")


def show_facts(image: dict[str, Any]) -> None:
    facts = [f"{image['width']}×{image['height']} {image['format']}", f"{image['bytes'] / 1024:,.0f} KiB"]
    bucket = image.get("bucket")
    if bucket:
        facts.append(f"bucket {bucket['width']}×{bucket['height']}")
    upscale = image["metadata"].get("upscale")
    if isinstance(upscale, int | float):
        facts.append(f"enlarged ×{upscale:.2f}")
    crop_reason = image["metadata"].get("crop_reason")
    if crop_reason:
        facts.append(f"crop {crop_reason}")
    st.caption(" · ".join(facts))


def _escape(text: str) -> str:
    """Markdown-safe text: file names and captions are the user's, not formatting."""
    return "".join(f"\\{ch}" if ch in "\\`*_{}[]<>()#+-.!|~$" else ch for ch in text)
