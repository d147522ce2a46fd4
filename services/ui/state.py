"""The dashboard's shared pieces: the cached API client, cached thumbnails, status badge colours."""

from __future__ import annotations

import streamlit as st

from services.ui.client import ApiClient, ClientConfig

STATUS_COLOURS = {"kept": "green", "rejected": "red", "duplicate": "orange", "pending": "gray"}


@st.cache_resource
def _client_for(config: ClientConfig) -> ApiClient:
    return ApiClient(config)


def api() -> ApiClient:
    """One client per API address and token (read from the environment on every run)."""
    return _client_for(ClientConfig.from_env())


@st.cache_data(ttl=600, show_spinner=False, max_entries=2000)
def thumbnail(base_url: str, image_id: str) -> bytes:
    # Thumbnails never change for an image id, so the grid does not refetch them on every rerun.
    del base_url  # part of the cache key only
    return api().thumbnail(image_id)


def status_badge(status: str) -> None:
    st.badge(status, color=STATUS_COLOURS.get(status, "blue"))  # type: ignore[arg-type]
