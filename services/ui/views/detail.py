"""The review page's detail panel: the open picture's large preview (crop box, faces, identity box), keep
and reject with a reason of its own, next and previous, the caption that saves when left, and the score
badges against their thresholds. Every write names the dataset shown."""

from __future__ import annotations

from typing import Any

import streamlit as st

from services.ui.client import ApiError
from services.ui.state import Review, api, caller_key, one_line, original, status_badge
from services.ui.views.identity import identity_box, identity_of, show_identity_badge
from services.ui.views.preview import annotated_preview, face_boxes

FLASH_KEY = "review_flash"


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
    st.markdown(f"### {escape_markdown(image['original_filename'])}")
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
        st.caption(f"Reason: {escape_markdown(image['status_reason'])}{manual}")
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


def escape_markdown(text: str) -> str:
    """Markdown-safe text: file names and captions are the user's, not formatting."""
    return "".join(f"\\{ch}" if ch in "\\`*_{}[]<>()#+-.!|~$" else ch for ch in text)
