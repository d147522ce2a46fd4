"""The dashboard's shared pieces: the cached API client, cached thumbnails, status badge colours."""

from __future__ import annotations

import hashlib

import streamlit as st

from services.ui.client import ApiClient, ClientConfig

STATUS_COLOURS = {"kept": "green", "rejected": "red", "duplicate": "orange", "pending": "gray"}


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


def status_badge(status: str) -> None:
    st.badge(status, color=STATUS_COLOURS.get(status, "blue"))  # type: ignore[arg-type]
