"""Live: one campaign's stock, winners and losers, consumer lag and throughput, refreshed every second."""

from __future__ import annotations

import datetime as dt
from typing import Any

import plotly.graph_objects as go
import streamlit as st

from dashboard.ui import api, attempt, pick_campaign, recover_when_back
from fcfs.settings import get_settings

LAG_WINDOW_S = 300
COLORS = {"success": "#2ca02c", "fail": "#ff7f0e", "duplicate": "#7f7f7f"}


def _times(points: list[dict[str, Any]]) -> list[dt.datetime]:
    tz = get_settings().tz
    return [dt.datetime.fromtimestamp(p["ts"], dt.UTC).astimezone(tz) for p in points]


def _merge_timeline(campaign_id: int) -> list[dict[str, Any]]:
    """The campaign's points, fetched in full once and then only from the last second on."""
    key = f"timeline-{campaign_id}"
    known: dict[int, dict[str, Any]] = st.session_state.setdefault(key, {})
    after = max(known) - 1 if known else None  # the last second may still be filling up
    for point in api().timeline(campaign_id, after)["points"]:
        known[point["ts"]] = point
    return [known[ts] for ts in sorted(known)]


def _merge_lag() -> dict[int, list[dict[str, Any]]]:
    known: dict[int, dict[int, dict[str, Any]]] = st.session_state.setdefault("lag-history", {})
    newest = max((max(s) for s in known.values() if s), default=None)
    for series in api().lag_history(LAG_WINDOW_S, None if newest is None else newest - 1)["partitions"]:
        samples = known.setdefault(series["partition"], {})
        for sample in series["samples"]:
            samples[sample["ts"]] = sample
    horizon = max((max(s) for s in known.values() if s), default=0) - LAG_WINDOW_S
    return {p: [s[ts] for ts in sorted(s) if ts > horizon] for p, s in sorted(known.items())}


def _figure(title: str, height: int = 300) -> go.Figure:
    fig = go.Figure()
    fig.update_layout(
        title=title, height=height, margin={"l": 10, "r": 10, "t": 40, "b": 10}, legend={"orientation": "h", "y": -0.2}
    )
    return fig


@st.fragment(run_every=1)
def live_panel(campaign_id: int) -> None:
    status = attempt(lambda: api().status(campaign_id), "read the campaign status")
    if status is None:
        return
    kafka = attempt(api().kafka, "read the consumer lag")
    points = attempt(lambda: _merge_timeline(campaign_id), "read the timeline") or []
    lag = attempt(_merge_lag, "read the lag history") or {}

    st.subheader(f"{status['campaignName']} — {status['status']}")
    row = st.columns(4)
    row[0].metric("Stock left", f"{status['currentStock']:,} / {status['totalStock']:,}")
    row[1].metric("Winners", f"{status['successCount']:,}")
    row[2].metric("Fails (sold out)", f"{status['failCount']:,}")
    row[3].metric("Duplicates", f"{status['duplicateCount']:,}")
    row = st.columns(4)
    row[0].metric("Stock used", status["stockUsageRate"])
    if kafka is not None:
        per_partition = ", ".join(f"p{p['partition']}: {p['lag']:,}" for p in kafka["partitions"])
        row[1].metric("Consumer lag", f"{kafka['totalLag']:,}", help=per_partition or None)
        row[2].metric("Decided / s", f"{kafka['decidedPerSecond']:,.0f}")
        row[3].metric(
            "Lag status",
            kafka["status"],
            help="OK: caught up or keeping up · WARN: lag growing · STALLED: lag and no progress",
        )

    if points:
        times = _times(points)
        left, right = st.columns(2)
        burn = _figure("Stock burn-down")
        start = times[0] - dt.timedelta(seconds=1)  # the full stock, just before the first decision
        burn.add_scatter(
            x=[start, *times],
            y=[status["totalStock"], *(p["stockLeft"] for p in points)],
            mode="lines",
            name="stock left",
            line={"shape": "hv"},
        )
        left.plotly_chart(burn, use_container_width=True, key=f"burn-{campaign_id}")
        totals = _figure("Decisions so far")
        for name, field in (
            ("success", "cumulativeSuccess"),
            ("fail", "cumulativeFail"),
            ("duplicate", "cumulativeDuplicate"),
        ):
            totals.add_scatter(
                x=times, y=[p[field] for p in points], mode="lines", name=name, line={"color": COLORS[name]}
            )
        right.plotly_chart(totals, use_container_width=True, key=f"totals-{campaign_id}")
    else:
        st.info("No decisions yet: the curves start with the first decided request.")
    if lag:
        lag_fig = _figure("Consumer lag per partition", height=260)
        for partition, samples in lag.items():
            lag_fig.add_scatter(
                x=_times(samples), y=[s["lag"] for s in samples], mode="lines", name=f"partition {partition}"
            )
        st.plotly_chart(lag_fig, use_container_width=True, key="lag")


st.title("Live")
campaigns = attempt(api().campaigns, "list the campaigns")
if campaigns is not None:
    chosen = pick_campaign(campaigns)
    if chosen is not None:
        live_panel(chosen)
recover_when_back()
