"""The Search page: ask image-search providers for pictures, preview the candidates with their licence,
pick some and add them to the dataset (the API downloads and ingests them; the run shows on the Pipeline
page). Providers' addresses and keys are server settings: the page only names providers."""

from __future__ import annotations

from typing import Any

import streamlit as st

from services.ui.client import ApiError
from services.ui.state import api, attempt, one_line, set_query_param

RESULT_KEY = "search_result"
COLUMNS = 4


def show_search(dataset: dict[str, Any]) -> None:
    client = api()
    try:
        if not client.searches_available():
            st.info(
                "This API has no image search yet: `loraforge search --help` says how to search from the CLI."
            )
            return
        providers = client.search_providers()
        licences = _licence_codes(client.schema("SearchCreate"))
    except ApiError as exc:
        st.error(f"Cannot read the search options: {one_line(exc)}")
        return
    show_search_form(dataset, providers, licences)
    result = st.session_state.get(RESULT_KEY)
    if result and result["dataset_id"] == dataset["id"]:  # never another dataset's candidates
        show_candidates(dataset, result["search"])


def _licence_codes(schema: dict[str, Any]) -> list[str]:
    field = schema["properties"].get("licences", {})
    for option in field.get("anyOf", [field]):
        if option.get("type") == "array":
            return list(option["items"].get("enum", []))
    return []


def show_search_form(dataset: dict[str, Any], providers: list[dict[str, Any]], licences: list[str]) -> None:
    usable = [p["name"] for p in providers if p["configured"]]
    titles = {p["name"]: p["title"] for p in providers}
    missing = [f"{p['title']} ({p['note']})" for p in providers if not p["configured"]]
    with st.form(key=f"{dataset['id']}-search", border=True):
        query = st.text_input(
            "Search for", key="search_query", placeholder="portrait of a woman, natural light"
        )
        left, right = st.columns(2)
        chosen = left.multiselect(
            "Providers",
            usable,
            default=["openverse"] if "openverse" in usable else usable[:1],  # licensed photos first
            format_func=titles.__getitem__,
            key="search_providers",
        )
        accepted = right.multiselect(
            "Licences accepted (none: any)", licences, default=[], key="search_licences"
        )
        limit = left.number_input("Candidates per provider", 1, 200, 24, key="search_limit")
        min_side = right.number_input("Shorter side at least (px)", 0, 10_000, 512, key="search_min_side")
        asked = st.form_submit_button("Search", type="primary", key="search_start")
    if missing:
        st.caption("Not configured on this server: " + "; ".join(missing))
    if not asked:
        return
    if not query.strip():
        st.error("Type what to search for: it cannot be empty or only spaces.")
        return
    if not chosen:
        st.error("Pick at least one provider.")
        return
    request = {"query": query.strip(), "providers": chosen, "limit": int(limit), "min_side": int(min_side)}
    if accepted:
        request["licences"] = accepted
    with st.spinner("Asking the providers…"):
        found = attempt(lambda: api().create_search(dataset["id"], request))
    if found is not None:
        st.session_state[RESULT_KEY] = {"dataset_id": dataset["id"], "search": found}


def show_candidates(dataset: dict[str, Any], search: dict[str, Any]) -> None:
    st.table(
        [
            {
                "provider": p["provider"],
                "found": p["found"],
                "new": p["new"],
                "refused": sum(p["refused"].values()),
                "error": p["error"] or "",
            }
            for p in search["providers"]
        ],
        hide_index=True,
    )
    candidates = search["candidates"]
    if not candidates:
        st.info("No new candidates: try other words, providers or licences.")
        return
    picked: list[str] = []
    for start in range(0, len(candidates), COLUMNS):
        for column, candidate in zip(st.columns(COLUMNS), candidates[start : start + COLUMNS], strict=False):
            with column, st.container(border=True):
                if candidate["thumbnail_url"]:
                    st.image(candidate["thumbnail_url"], width="stretch")
                st.caption(candidate["title"] or "untitled")
                licence = candidate["licence_label"]
                if candidate["licence_url"]:
                    licence = f"[{licence}]({candidate['licence_url']})"
                size = f" · {candidate['width']}×{candidate['height']}" if candidate["width"] else ""
                st.markdown(
                    f"{licence}{size}" + (f" · {candidate['creator']}" if candidate["creator"] else "")
                )
                if st.checkbox("Add", key=f"candidate-{search['id']}-{candidate['id']}"):
                    picked.append(candidate["id"])
    if st.button(f"Add {len(picked)} picked to {dataset['name']}", disabled=not picked, key="search_add"):
        accepted = attempt(lambda: api().add_candidates(dataset["id"], search["id"], picked))
        if accepted is not None:
            set_query_param("run", accepted["task_id"])
            st.session_state["pending_select"] = ("nav", "Pipeline")  # follow the download there
            st.rerun()
