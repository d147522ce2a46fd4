"""The image grid (thumbnails, status badges, filters, paging) and the detail panel for review."""

from __future__ import annotations

from typing import Any

import streamlit as st

from services.ui.client import ApiError
from services.ui.state import api, caller_key, status_badge, thumbnail

STATUSES = ["pending", "kept", "rejected", "duplicate"]
COLUMNS = 4
PAGE_SIZE = 24


def show_images(dataset: dict[str, Any]) -> None:
    client = api()
    filters, paging = st.columns([3, 1])
    statuses = filters.multiselect("Status", STATUSES, key="status_filter")
    page = paging.number_input("Page", min_value=1, value=1, step=1, key="page")
    listing = client.images(
        dataset["id"], statuses=statuses, offset=(int(page) - 1) * PAGE_SIZE, limit=PAGE_SIZE
    )
    st.metric("Images", listing["count"])
    if not listing["data"]:
        st.info("No images here yet: upload some in the Pipeline tab.")
        return
    grid, detail = st.columns([3, 2])
    with grid:
        show_grid(listing["data"])
    with detail:
        selected = st.session_state.get("image_id")
        if selected:
            show_detail(selected)
        else:
            st.caption("Open an image to review it and edit its caption.")


def show_grid(images: list[dict[str, Any]]) -> None:
    caller = caller_key()
    for start in range(0, len(images), COLUMNS):
        for column, image in zip(st.columns(COLUMNS), images[start : start + COLUMNS], strict=False):
            with column:
                if image["has_thumbnail"]:
                    st.image(thumbnail(caller, image["id"]), caption=image["original_filename"])
                else:
                    st.caption(image["original_filename"])
                status_badge(image["status"])
                st.button("Open", key=f"open-{image['id']}", on_click=_select, args=(image["id"],))


def _select(image_id: str) -> None:
    st.session_state["image_id"] = image_id


def show_detail(image_id: str) -> None:
    client = api()
    try:
        image = client.image(image_id)
    except ApiError as exc:
        st.warning(f"Cannot show this image: {exc.message}")
        return
    st.subheader(image["original_filename"])
    if image["has_thumbnail"]:
        st.image(thumbnail(caller_key(), image_id))
    status_badge(image["status"])
    if image["status_reason"]:
        st.caption(f"Reason: {image['status_reason']}" + (" (manual)" if image["status_manual"] else ""))
    st.text(f"{image['width']}x{image['height']} {image['format']}, {image['bytes']:,} bytes")
    if image["bucket"]:
        st.text(f"Bucket: {image['bucket']['width']}x{image['bucket']['height']}")
    show_review(image)
    show_caption_editor(image)
    with st.expander("Metadata"):
        st.json({"metadata": image["metadata"], "faces": image["faces"]})


def show_review(image: dict[str, Any]) -> None:
    reason = st.text_input("Reason", key="review_reason", placeholder="why keep or reject (optional)")
    keep, reject = st.columns(2)
    if keep.button("Keep", key="keep", type="primary"):
        _review(image["id"], "kept", reason)
    if reject.button("Reject", key="reject"):
        _review(image["id"], "rejected", reason)


def _review(image_id: str, status: str, reason: str) -> None:
    try:
        api().review(image_id, status, reason)
    except ApiError as exc:
        st.error(exc.message)
        return
    st.toast(f"Marked {status}")
    st.rerun()


def show_caption_editor(image: dict[str, Any]) -> None:
    captions = image["captions"]
    active = next((c for c in captions if c["is_active"]), None)
    text = st.text_area("Caption", value=active["text"] if active else "", key=f"caption-{image['id']}")
    if st.button("Save caption", key="save_caption"):
        if not text.strip():
            st.error("A caption cannot be empty.")
        else:
            try:
                api().edit_caption(image["id"], text)
                st.success("Caption saved")
            except ApiError as exc:
                st.error(exc.message)
    history = [c for c in captions if not c["is_active"]]
    if history:
        with st.expander(f"Caption history ({len(history)})"):
            for caption in reversed(history):
                st.caption(
                    f"{caption['variant']} · {'edited' if caption['edited'] else caption['source_model']}"
                )
                st.text(caption["text"])
