"""Reference faces (the identity filter) in the review page: the picked pictures become the dataset's
reference faces (PUT), the current ones are listed (GET) and can be cleared (DELETE); each picture's
distance to them shows as a badge against the threshold, and its matched face is drawn in the preview."""

from __future__ import annotations

from typing import Any

import streamlit as st

from services.ui.client import ApiError
from services.ui.state import Review, api, caller_key, one_line, thumbnail

DEFAULT_MAX_DISTANCE = 0.6
"""dlib's own rule, the API's default: closer than this is the same person."""
CACHE_KEY = "reference_faces"
"""(dataset id, the GET answer): read once per dataset shown, again after a change here."""
MESSAGE_KEY = "reference_faces_message"


def references(dataset_id: str) -> dict[str, Any]:
    cached = st.session_state.get(CACHE_KEY)
    if cached and cached[0] == dataset_id:
        return dict(cached[1])
    answer = api().reference_faces(dataset_id)
    st.session_state[CACHE_KEY] = (dataset_id, answer)
    return dict(answer)


def show_reference_faces(dataset: dict[str, Any], review: Review) -> None:
    dataset_id = dataset["id"]
    message = st.session_state.pop(MESSAGE_KEY, None)
    try:
        current = references(dataset_id)
    except ApiError as exc:
        with st.expander("Reference faces"):
            st.warning(f"Cannot read the reference faces: {one_line(exc)}")
        return
    title = f"Reference faces · {current['count']}" if current["count"] else "Reference faces · none"
    with st.expander(title, expanded=bool(message)), st.container(key="reference_faces"):
        if message and message[0] == dataset_id:
            getattr(st, message[1])(message[2])
        if current["count"]:
            st.caption(
                f"The next curation rejects pictures whose faces all lie farther than "
                f"{current['max_distance']:.2f} from these as `other_person` ({current['model']})."
            )
            caller = caller_key()
            columns = st.columns(min(6, max(3, current["count"])))
            for index, face in enumerate(current["data"]):
                with columns[index % len(columns)]:
                    if face["image_id"]:
                        try:
                            st.image(thumbnail(caller, face["image_id"]), width="stretch")
                        except ApiError:
                            pass  # the picture is gone; its face vector stays a reference
                    st.caption(face["name"])
        else:
            st.caption(
                "None: the identity filter is off. Pick pictures showing the person, then use them as "
                "reference faces; the next curation flags everyone else as `other_person`."
            )
        row = st.container(horizontal=True, gap="small", vertical_alignment="bottom")
        with row:
            distance = st.number_input(
                "Largest distance still the same person",
                min_value=0.2,
                max_value=1.0,
                value=float(current["max_distance"] or DEFAULT_MAX_DISTANCE),
                step=0.05,
                format="%.2f",
                key=f"{dataset_id}-max-distance",
                help="dlib's face distance; lower is stricter (0.6 is dlib's own rule).",
            )
            st.button(
                f"Use the {len(review.picked)} picked as reference faces",
                key="use_references",
                type="primary",
                disabled=not review.picked,
                on_click=_use_picked,
                args=(dataset_id, review, distance),
            )
            st.button(
                "Clear reference faces",
                key="clear_references",
                disabled=not current["count"],
                on_click=_clear,
                args=(dataset_id,),
            )


def _use_picked(dataset_id: str, review: Review, distance: float) -> None:
    distance = float(st.session_state.get(f"{dataset_id}-max-distance", distance))
    try:
        answer = api().set_reference_faces(dataset_id, sorted(review.picked), round(distance, 3))
    except ApiError as exc:
        if exc.status == 503:
            note = f"Reference faces are not available on this server: {one_line(exc)}"
        else:
            note = f"Reference faces not set: {one_line(exc)}"
        st.session_state[MESSAGE_KEY] = (dataset_id, "error", note)
        return
    st.session_state[CACHE_KEY] = (dataset_id, answer)
    st.session_state[MESSAGE_KEY] = (
        dataset_id,
        "success",
        f"{answer['count']} reference face(s) set: run curation to compare every picture with them.",
    )


def _clear(dataset_id: str) -> None:
    try:
        api().clear_reference_faces(dataset_id)
    except ApiError as exc:
        st.session_state[MESSAGE_KEY] = (dataset_id, "error", f"Not cleared: {one_line(exc)}")
        return
    st.session_state.pop(CACHE_KEY, None)
    st.session_state[MESSAGE_KEY] = (dataset_id, "success", "Reference faces cleared: the filter is off.")


def identity_of(image: dict[str, Any]) -> dict[str, Any] | None:
    """The picture's comparison with the reference faces, if it has a face and curation compared it."""
    value = image["metadata"].get("identity")
    if isinstance(value, dict) and isinstance(value.get("distance"), int | float):
        return value
    return None


def identity_box(image: dict[str, Any]) -> tuple[float, ...] | None:
    value = identity_of(image)
    box = value.get("box") if value else None
    return tuple(float(v) for v in box) if box and len(box) == 4 else None


def show_identity_badge(image: dict[str, Any]) -> None:
    """Distance and similarity against the threshold: green the same person, red another one."""
    value = identity_of(image)
    if value is None:
        if isinstance(image["metadata"].get("identity"), dict):
            st.caption("Identity: no face found, so not compared with the reference faces.")
        return
    distance = float(value["distance"])
    threshold = float(value.get("max_distance") or DEFAULT_MAX_DISTANCE)
    similarity = float(value.get("similarity", 1 - distance))
    same = distance <= threshold
    colour, verdict = ("green", "same person") if same else ("red", "other person")
    if same and distance > 0.8 * threshold:
        colour = "orange"
    st.markdown(
        f":{colour}-badge[identity: {verdict} · distance {distance:.2f} / {threshold:.2f} · "
        f"similarity {similarity:.2f}]",
        help="distance to the closest reference face / the largest distance still the same person",
    )
