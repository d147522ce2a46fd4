"""The Search page: find pictures with an image-search provider, preview them with their licence, and add
the chosen ones to the dataset. It appears in the navigation now; the browser part needs the API's
search routes (POST /datasets/{id}/searches), and until the API offers them the page says how to search
from the command line."""

from __future__ import annotations

from typing import Any

import streamlit as st

from services.ui.client import ApiError
from services.ui.state import api, one_line

CLI_HINT = (
    "loraforge search --help   # search providers, preview candidates with their licence, add to {name}"
)


def show_search(dataset: dict[str, Any]) -> None:
    st.subheader("Find pictures")
    try:
        available = api().searches_available()
    except ApiError as exc:
        st.error(f"Cannot ask the API what it offers: {one_line(exc)}")
        return
    if available:
        st.info(
            "This API offers image search. Searching from this page (preview, licence, add) arrives with the "
            "search issue's dashboard part; meanwhile the command line does it:"
        )
    else:
        st.info(
            "Search in the browser comes with the API's search routes. Until then, search from the command "
            "line: it previews each candidate with its licence and adds the ones you pick."
        )
    st.code(CLI_HINT.format(name=dataset["name"]), language="bash")
