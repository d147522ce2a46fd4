"""The dashboard's shared pieces: the cached API client, cached image bytes, the review state scoped to one
dataset, the URL's query parameters, and one-line failure messages."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import streamlit as st

from services.ui.client import ApiClient, ApiError, ClientConfig

STATUS_COLOURS = {"kept": "green", "rejected": "red", "duplicate": "orange", "pending": "gray"}
REVIEW_KEY = "review"
T = TypeVar("T")


@st.cache_resource
def _client_for(config: ClientConfig) -> ApiClient:
    return ApiClient(config)


def api() -> ApiClient:
    """One client per API address and token: the token this browser session logged in with, else
    LORAFORGE_API_TOKEN (read from the environment on every run)."""
    env = ClientConfig.from_env()
    return _client_for(ClientConfig(base_url=env.base_url, token=session_token() or env.token))


def session_token() -> str | None:
    token = st.session_state.get("login_token")
    return str(token) if token else None


def log_in(token: str) -> None:
    st.session_state["login_token"] = token.strip()


def log_out() -> None:
    st.session_state.pop("login_token", None)


def caller_key() -> str:
    """Who asks, for cache keys: cached bytes are shared between sessions, so never between users."""
    token = api().config.token or ""
    return hashlib.sha256(f"{api().config.base_url}|{token}".encode()).hexdigest()[:16]


@st.cache_data(ttl=600, show_spinner=False, max_entries=2000)
def thumbnail(caller: str, image_id: str) -> bytes:
    # Thumbnails never change for an image id, so the grid does not refetch them on every rerun.
    del caller  # part of the cache key only: one user's thumbnails are never served to another
    return api().thumbnail(image_id)


@st.cache_data(ttl=600, show_spinner=False, max_entries=64)
def original(caller: str, image_id: str) -> bytes:
    del caller  # as for thumbnails: originals are written once and never change
    return api().original(image_id)


def status_badge(status: str) -> None:
    st.badge(status, color=STATUS_COLOURS.get(status, "blue"))  # type: ignore[arg-type]


class Review:
    """What the reviewer has open and picked, valid for one dataset only.

    Kept under one session key together with the dataset it belongs to: `review_state(dataset_id)` hands
    out a fresh one whenever the dataset shown changes, so an image of one dataset can never stay open
    (and be edited) while another is shown.
    """

    def __init__(self, dataset_id: str) -> None:
        self.dataset_id = dataset_id
        self.open_id: str | None = None
        self.picked: set[str] = set()
        self.order: list[str] = []
        """The ids of the grid's current page, in order: what next and previous step through."""

    def step(self, offset: int) -> None:
        if not self.order:
            return
        if self.open_id not in self.order:
            self.open_id = self.order[0]
            return
        index = self.order.index(self.open_id) + offset
        self.open_id = self.order[max(0, min(index, len(self.order) - 1))]


def review_state(dataset_id: str) -> Review:
    state = st.session_state.get(REVIEW_KEY)
    if not isinstance(state, Review) or state.dataset_id != dataset_id:
        state = Review(dataset_id)
        st.session_state[REVIEW_KEY] = state
    return state


def query_param(name: str) -> str | None:
    value = st.query_params.get(name)
    return str(value) if value else None


def set_query_param(name: str, value: str | None) -> None:
    if value is None:
        st.query_params.pop(name, None)
    elif st.query_params.get(name) != value:
        st.query_params[name] = value


def one_line(exc: BaseException) -> str:
    """A failure as one line a user reads: the API's message, else the exception's first line."""
    if isinstance(exc, ApiError):
        return exc.message.splitlines()[0] if exc.message else exc.code
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


@contextmanager
def failures_as_messages(what: str) -> Iterator[None]:
    """Render any failure inside as one line (`what` says which part failed); never a traceback."""
    try:
        yield
    except Exception as exc:  # noqa: BLE001 - the dashboard's last line: a message instead of a traceback
        if _is_control_flow(exc):
            raise
        st.error(f"{what}: {one_line(exc)}", icon=":material/error:")


def _is_control_flow(exc: BaseException) -> bool:
    # st.rerun / st.stop / switch_page raise exceptions Streamlit itself must see.
    return type(exc).__module__.startswith("streamlit.runtime")


def attempt(call: Callable[[], T], *, where: Any = st) -> T | None:
    """Run one API call; on refusal show its one-line message (in `where`) and answer None."""
    try:
        return call()
    except ApiError as exc:
        where.error(one_line(exc))
        return None
