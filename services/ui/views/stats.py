"""Statistics charts (status and bucket counts), exports with downloads, and trainings."""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from services.ui.state import api


def show_stats(dataset: dict[str, Any]) -> None:
    stats = api().stats(dataset["id"])
    total, captioned, kept = st.columns(3)
    total.metric("Images", stats["total"])
    captioned.metric("Captioned", stats["captioned"])
    kept.metric("Kept", stats["by_status"].get("kept", 0))
    by_status, by_bucket = st.columns(2)
    with by_status:
        st.subheader("By status")
        _bar_chart(stats["by_status"], "status")
    with by_bucket:
        st.subheader("By bucket")
        _bar_chart(stats["by_bucket"], "bucket")


def _bar_chart(counts: dict[str, int], label: str) -> None:
    if not counts:
        st.caption("Nothing yet.")
        return
    frame = pd.DataFrame({label: list(counts), "images": list(counts.values())}).set_index(label)
    st.bar_chart(frame)


def show_exports(dataset: dict[str, Any]) -> None:
    client = api()
    exports = client.exports(dataset["id"])
    if not exports:
        st.info("No exports yet: run the export stage in the Pipeline tab.")
    for export in exports:
        with st.container(border=True):
            st.markdown(f"**{export['format']}** · {export['status']} · {export['image_count']} images")
            st.caption(f"{export['created_at']} · {export['bytes']:,} bytes · {export['id']}")
            if export["object_key"]:
                st.download_button(
                    "Download zip",
                    data=_downloader(export["id"]),
                    file_name=f"{dataset['name']}-{export['format']}-{export['id'][:8]}.zip",
                    mime="application/zip",
                    key=f"download-{export['id']}",
                )
    trainings = client.trainings(dataset["id"])
    if trainings:
        st.subheader("Trainings")
        st.dataframe(
            [{k: t[k] for k in ("provider", "status", "output_version", "created_at")} for t in trainings],
            hide_index=True,
        )


def _downloader(export_id: str) -> Any:
    # Deferred: the archive is fetched only when the user clicks, not on every rerun.
    return lambda: api().download_export(export_id)
