"""Analytics: daily and period statistics from the nightly aggregates, and raw vs batched query timings."""

from __future__ import annotations

import datetime as dt
import statistics
from functools import partial
from typing import Literal

import plotly.graph_objects as go
import streamlit as st

from dashboard.ui import api, attempt, recover_when_back, whole_number
from fcfs.days import local_today
from fcfs.settings import get_settings

st.title("Analytics")
tz = get_settings().tz
yesterday = local_today(tz) - dt.timedelta(days=1)
period = st.date_input(
    "Period", value=(yesterday - dt.timedelta(days=6), yesterday), max_value=local_today(tz), key="period"
)
first, last = period if isinstance(period, tuple) and len(period) == 2 else (yesterday, yesterday)
campaign_filter = st.text_input("Campaign id (empty: all)", key="campaign-filter").strip()
params: dict[str, str] = {"from": first.isoformat(), "to": last.isoformat()}
if whole_number(campaign_filter) is not None:
    params["campaignId"] = campaign_filter

stats = attempt(lambda: api().statistics("daily", params).data, "read the statistics")
if stats is not None:
    summary = stats["summary"]
    cols = st.columns(5)
    cols[0].metric("Campaigns", f"{summary['campaignCount']:,}")
    cols[1].metric("Requests", f"{summary['totalCount']:,}")
    cols[2].metric("Winners", f"{summary['successCount']:,}")
    cols[3].metric("Success rate", f"{summary['successRate']:.2f}%")
    cols[4].metric("Query time", f"{stats['queryTimeMs']:.1f} ms")
    if stats["rows"]:
        days = sorted({r["date"] for r in stats["rows"]})
        fig = go.Figure()
        colors = {"success": "#2ca02c", "fail": "#ff7f0e", "duplicate": "#7f7f7f"}
        for name, key in (("success", "successCount"), ("fail", "failCount"), ("duplicate", "duplicateCount")):
            fig.add_bar(
                x=days,
                y=[sum(r[key] for r in stats["rows"] if r["date"] == d) for d in days],
                name=name,
                marker_color=colors[name],
            )
        fig.update_layout(
            barmode="stack",
            title="Requests per day (batched aggregates)",
            height=340,
            margin={"l": 10, "r": 10, "t": 40, "b": 10},
        )
        st.plotly_chart(fig, width="stretch", key="daily")
        st.dataframe(stats["campaigns"], hide_index=True, width="stretch")
    else:
        st.info("No aggregated statistics in this period: run the aggregation on the Control page.")

st.header("Raw vs batched")
st.caption("Runs the same statistics query both ways through the API and compares the response times.")
runs = st.number_input("Runs", min_value=1, max_value=50, value=5, key="runs")
if st.button("Measure", key="measure"):
    timings: dict[str, list[float]] = {"raw": [], "batched": []}
    sources: dict[str, Literal["raw", "daily"]] = {"raw": "raw", "batched": "daily"}
    failed = False
    for _ in range(int(runs)):
        for method, source in sources.items():
            timed = attempt(partial(api().statistics, source, params), "run the statistics query")
            if timed is None:
                failed = True
                break
            timings[method].append(timed.wall_ms)
    if not failed:
        raw, batched = statistics.median(timings["raw"]), statistics.median(timings["batched"])
        ratio_cols = st.columns(3)
        ratio_cols[0].metric("Raw, median", f"{raw:,.1f} ms")
        ratio_cols[1].metric("Batched, median", f"{batched:,.1f} ms")
        ratio_cols[2].metric("Ratio", f"{raw / batched:,.1f}×" if batched else "—")
        fig = go.Figure()
        for method, values in timings.items():
            fig.add_bar(x=list(range(1, len(values) + 1)), y=values, name=method)
        fig.update_layout(
            barmode="group",
            title="Response time per run (ms)",
            height=300,
            xaxis_title="run",
            margin={"l": 10, "r": 10, "t": 40, "b": 10},
        )
        st.plotly_chart(fig, width="stretch", key="raw-vs-batched")
recover_when_back()
