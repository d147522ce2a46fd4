"""Statistics charts (issues, buckets, resolutions, caption lengths against CLIP's limit, trigger coverage,
upscale factors) and the exports with their downloads."""

from __future__ import annotations

import re
from typing import Any

import altair as alt
import pandas as pd
import streamlit as st

from services.ui.state import api

CLIP_TOKENS = 77
"""What CLIP's text encoder reads, its start and end markers included."""
WORD_OR_MARK = re.compile(r"\w+|[^\w\s]")
STATUS_HEX = {"pending": "#9ca3af", "kept": "#22c55e", "rejected": "#ef4444", "duplicate": "#f59e0b"}
STATUS_SCALE = alt.Scale(domain=list(STATUS_HEX), range=list(STATUS_HEX.values()))


def show_stats(dataset: dict[str, Any]) -> None:
    client = api()
    stats = client.stats(dataset["id"])
    cards = pd.DataFrame(client.cards(dataset["id"], limit=500)["data"])
    total, captioned, kept, rejected = st.columns(4)
    total.metric("Pictures", stats["total"])
    captioned.metric("Captioned", stats["captioned"])
    kept.metric("Kept", stats["by_status"].get("kept", 0))
    rejected.metric("Rejected", stats["by_status"].get("rejected", 0))
    if cards.empty:
        st.info("No pictures yet: the charts appear once some are ingested.")
        return
    left, right = st.columns(2)
    with left:
        st.subheader("Issues")
        issues = cards.explode("issues").dropna(subset=["issues"])
        _chart(
            issues,
            alt.Chart(issues)
            .mark_bar()
            .encode(
                x=alt.X("count():Q", title="pictures", axis=alt.Axis(tickMinStep=1, format="d")),
                y=alt.Y("issues:N", sort="-x", title=None),
                color=alt.Color("status:N", scale=STATUS_SCALE),
            ),
            "No picture has an issue.",
        )
        st.subheader("Resolution")
        st.altair_chart(
            alt.Chart(cards)
            .mark_circle(size=70, opacity=0.8)
            .encode(
                x=alt.X("width:Q", title="width (px)"),
                y=alt.Y("height:Q", title="height (px)"),
                color=alt.Color("status:N", scale=STATUS_SCALE),
                tooltip=["original_filename", "width", "height", "status"],
            ),
            width="stretch",
        )
        st.subheader("Trigger word")
        show_trigger_coverage(cards, dataset.get("trigger_word"))
    with right:
        st.subheader("Buckets")
        buckets = pd.DataFrame(
            {"bucket": list(stats["by_bucket"]), "pictures": list(stats["by_bucket"].values())}
        )
        _chart(
            buckets,
            alt.Chart(buckets).mark_bar().encode(x=alt.X("bucket:N", sort="-y"), y="pictures:Q"),
            "No buckets yet: run the bucket stage.",
        )
        st.subheader("Caption length")
        show_caption_lengths(cards, dataset.get("target_model"))
        st.subheader("Upscale factors")
        show_upscales(cards)


def _chart(frame: pd.DataFrame, chart: alt.Chart, empty: str) -> None:
    if frame.empty:
        st.caption(empty)
    else:
        st.altair_chart(chart, width="stretch")


def show_caption_lengths(cards: pd.DataFrame, target: str | None = None) -> None:
    captions = cards.dropna(subset=["caption"]).copy()
    if captions.empty:
        st.caption("No captions yet.")
        return
    if "caption_tokens" in captions:
        captions["tokens"] = captions["caption_tokens"]  # CLIP's own count, made by the API
        title, how = "CLIP tokens", "Counted with CLIP's tokenizer, start and end markers included."
    else:  # an API older than caption_tokens
        captions["tokens"] = captions["caption"].map(lambda text: len(WORD_OR_MARK.findall(text)) + 2)
        title, how = "tokens (about)", "Words and punctuation are counted; CLIP splits rare words further."
    over = int((captions["tokens"] > CLIP_TOKENS).sum())
    bars = (
        alt.Chart(captions)
        .mark_bar()
        .encode(x=alt.X("tokens:Q", bin=alt.Bin(maxbins=30), title=title), y="count():Q")
    )
    limit = alt.Chart(pd.DataFrame({"tokens": [CLIP_TOKENS]})).mark_rule(color="#ef4444", strokeDash=[4, 4])
    st.altair_chart(bars + limit.encode(x="tokens:Q"), width="stretch")
    flux = " Flux also reads the whole caption with T5 (512 tokens)." if target == "flux" else ""
    st.caption(f"Red line: CLIP's {CLIP_TOKENS}-token limit. {over} caption(s) over it. {how}{flux}")


def show_trigger_coverage(cards: pd.DataFrame, trigger: str | None) -> None:
    if not trigger:
        st.caption("This dataset has no trigger word.")
        return
    word = re.compile(rf"(?<!\w){re.escape(trigger)}(?!\w)", re.IGNORECASE)

    def coverage(caption: Any) -> str:
        if not isinstance(caption, str):
            return "no caption"
        return "has the trigger" if word.search(caption) else "missing the trigger"

    counts = cards["caption"].map(coverage).value_counts().rename_axis("caption").reset_index(name="pictures")
    st.altair_chart(
        alt.Chart(counts)
        .mark_arc(innerRadius=40)
        .encode(
            theta="pictures:Q",
            color=alt.Color(
                "caption:N",
                scale=alt.Scale(
                    domain=["has the trigger", "missing the trigger", "no caption"],
                    range=["#22c55e", "#ef4444", "#6b7280"],
                ),
            ),
            tooltip=["caption", "pictures"],
        ),
        width="stretch",
    )


def show_upscales(cards: pd.DataFrame) -> None:
    factors = cards.dropna(subset=["upscale"]) if "upscale" in cards else pd.DataFrame()
    if factors.empty:
        st.caption("No upscale factors yet: run the bucket stage.")
        return
    st.altair_chart(
        alt.Chart(factors)
        .mark_bar()
        .encode(x=alt.X("upscale:Q", bin=alt.Bin(step=0.25), title="enlarged ×"), y="count():Q"),
        width="stretch",
    )


def show_exports(dataset: dict[str, Any]) -> None:
    exports = list(reversed(api().exports(dataset["id"])))  # the API lists oldest first: newest on top
    if not exports:
        st.info("No exports yet: run the pipeline (or the export stage) on the Pipeline page.")
    for number, export in zip(range(len(exports), 0, -1), exports, strict=True):
        with st.container(border=True):
            summary = f"{export['format']} · {export['status']} · {export['image_count']} pictures"
            st.markdown(f"**Version {number}** · {summary}")
            st.caption(f"{export['created_at'][:19].replace('T', ' ')} UTC · {export['bytes']:,} bytes")
            if export["object_key"]:
                st.download_button(
                    "Download zip",
                    data=_downloader(export["id"]),
                    file_name=f"{dataset['name']}-{export['format']}-{export['id'][:8]}.zip",
                    mime="application/zip",
                    key=f"download-{export['id']}",
                )


def _downloader(export_id: str) -> Any:
    # Deferred: the archive is fetched only when the user clicks, not on every rerun.
    return lambda: api().download_export(export_id)
