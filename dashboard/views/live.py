"""Live: one campaign's stock, winners and losers, consumer lag and throughput, refreshed every second."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import plotly.graph_objects as go
import streamlit as st

from dashboard.invite import only_this_machine, page_link, qr_png
from dashboard.series import FULL_RELOAD_S, REFETCH_S, sold_out_second, spans, stalled_seconds, zero_filled
from dashboard.ui import api, attempt, field, pick_campaign, recover_when_back, table, whole_number
from fcfs.settings import get_settings

LAG_WINDOW_S = 300
COLORS = {"success": "#2ca02c", "fail": "#ff7f0e", "duplicate": "#7f7f7f"}
INTAKE = ("accepted", "unavailable", "limited")
SWITCHED = {
    "PAUSE": "paused",
    "RESUME": "resumed",
    "END": "ended",
    "MOVE_END": "end moved",
    "ADD_STOCK": "stock added",
    "DRAW": "pre-queue drawn",
}


@dataclass(frozen=True)
class Moments:
    sold_out: int | None  # epoch second
    unavailable: list[tuple[int, int]]  # stretches of seconds with 503s at the door
    database_down: list[tuple[int, int]]  # stretches the API found the database unavailable
    stalled: list[tuple[int, int]]  # stretches with a partition stalled
    switches: list[tuple[float, str]]  # (epoch seconds, action) of the operators' switches


def _times(points: list[dict[str, Any]]) -> list[dt.datetime]:
    tz = get_settings().tz
    return [dt.datetime.fromtimestamp(p["ts"], dt.UTC).astimezone(tz) for p in points]


Merged = tuple[list[dict[str, Any]], list[dict[str, Any]], list[int], list[tuple[float, str]]]


def _merge_timeline(campaign_id: int) -> Merged:
    """The campaign's decision points, intake points, database-unavailable seconds and switches: in full every
    FULL_RELOAD_S, in between only the last REFETCH_S seconds."""
    known: dict[int, dict[str, Any]] = st.session_state.setdefault(f"timeline-{campaign_id}", {})
    door: dict[int, dict[str, Any]] = st.session_state.setdefault(f"intake-{campaign_id}", {})
    database_down: set[int] = st.session_state.setdefault(f"database-down-{campaign_id}", set())
    switched: set[tuple[float, str]] = st.session_state.setdefault(f"switches-{campaign_id}", set())
    reloaded_key = f"timeline-reloaded-{campaign_id}"
    newest = max([*known, *door], default=None)
    if time.monotonic() - st.session_state.get(reloaded_key, 0.0) >= FULL_RELOAD_S:
        newest = None
        st.session_state[reloaded_key] = time.monotonic()
    answer = api().timeline(campaign_id, None if newest is None else newest - REFETCH_S)
    for point in answer["points"]:
        known[point["ts"]] = point
    for point in answer.get("intake", []):
        door[point["ts"]] = point
    database_down.update(answer.get("databaseUnavailable", []))
    switched.update((s["ts"], s["action"]) for s in answer.get("switches", []))
    return (
        [known[ts] for ts in sorted(known)],
        [door[ts] for ts in sorted(door)],
        sorted(database_down),
        sorted(switched),
    )


def _mark(fig: go.Figure, moments: Moments) -> None:
    """The moments that matter on a time axis: sold out, the operators' switches, Kafka refusing at the door,
    the database unavailable to the API, a stalled partition."""
    tz = get_settings().tz

    def at(second: float) -> dt.datetime:
        return dt.datetime.fromtimestamp(second, dt.UTC).astimezone(tz)

    if moments.sold_out is not None:
        fig.add_vline(x=at(moments.sold_out), line={"color": "#d62728", "dash": "dot"})
        fig.add_annotation(x=at(moments.sold_out), y=1, yref="paper", text="sold out", showarrow=False)
    for n, (second, action) in enumerate(moments.switches):
        fig.add_vline(x=at(second), line={"color": "#17becf", "dash": "dash"})
        y = 0.92 - 0.08 * (n % 3)  # switches close together: their labels one under the other
        fig.add_annotation(x=at(second), y=y, yref="paper", text=SWITCHED[action], showarrow=False)
    for first, last, color, label in (
        *((a, b, "rgba(214,39,40,0.15)", "Kafka unavailable") for a, b in moments.unavailable),
        *((a, b, "rgba(148,103,189,0.18)", "database unavailable") for a, b in moments.database_down),
        *((a, b, "rgba(255,127,14,0.15)", "lag stalled") for a, b in moments.stalled),
    ):
        fig.add_vrect(x0=at(first - 0.5), x1=at(last + 0.5), fillcolor=color, line_width=0, annotation_text=label)


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
    now = int(time.time())
    merged = attempt(lambda: _merge_timeline(campaign_id), "read the timeline") or ([], [], [], [])
    points = zero_filled(merged[0], now)
    intake = zero_filled(merged[1], now, counts=INTAKE)
    lag = attempt(_merge_lag, "read the lag history") or {}
    moments = Moments(
        sold_out_second(points),
        spans([p["ts"] for p in intake if p["unavailable"]]),
        spans(merged[2]),
        spans([s for samples in lag.values() for s in stalled_seconds(samples)]),
        merged[3],
    )

    paused = " · PAUSED by its operators" if status.get("paused") else ""
    st.subheader(f"{status['campaignName']} — {status['status']}{paused}")
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
        left.plotly_chart(burn, width="stretch", key=f"burn-{campaign_id}")
        totals = _figure("Decisions so far")
        for name, field in (
            ("success", "cumulativeSuccess"),
            ("fail", "cumulativeFail"),
            ("duplicate", "cumulativeDuplicate"),
        ):
            totals.add_scatter(
                x=times,
                y=[p[field] for p in points],
                mode="lines",
                name=name,
                line={"color": COLORS[name], "shape": "hv"},  # steps: a second without decisions stays flat
            )
        _mark(totals, moments)
        right.plotly_chart(totals, width="stretch", key=f"totals-{campaign_id}")
    else:
        st.info("No decisions yet: the curves start with the first decided request.")
    if intake or points:
        rates = _figure("Per second: the door's answers and the decisions")
        rates.update_layout(barmode="stack")
        for name, key, color in (
            ("accepted (202)", "accepted", "#1f77b4"),
            ("refused: Kafka unavailable (503)", "unavailable", "#d62728"),
            ("refused: over the rate (429)", "limited", "#9467bd"),
        ):
            rates.add_bar(x=_times(intake), y=[p[key] for p in intake], name=name, marker_color=color)
        rates.add_scatter(
            x=_times(points),
            y=[p["success"] + p["fail"] + p["duplicate"] for p in points],
            mode="lines",
            name="decided",
            line={"color": "#2ca02c", "shape": "hv"},
        )
        _mark(rates, moments)
        st.plotly_chart(rates, width="stretch", key=f"rates-{campaign_id}")
    if lag:
        lag_fig = _figure("Consumer lag per partition", height=260)
        for partition, samples in lag.items():
            lag_fig.add_scatter(
                x=_times(samples), y=[s["lag"] for s in samples], mode="lines", name=f"partition {partition}"
            )
        st.plotly_chart(lag_fig, width="stretch", key="lag")


def invite(campaign_id: int) -> None:
    """The participant page's link and QR code: a presenter puts a room of phones into the event."""
    link = page_link(get_settings(), campaign_id)
    with st.expander("Invite the room: the participant page", icon=":material/qr_code_2:"):
        left, right = st.columns([1, 2])
        left.image(qr_png(link), caption="Scan to take part", width=220)
        right.markdown(f"[{link}]({link})")
        right.caption("One tap: the ticket, the place in line, then the outcome as soon as it is decided.")
        if only_this_machine(link):
            right.warning(
                "This link names this machine only: set PUBLIC_URL to the door's address on the room's network."
            )


SWITCH_COLUMNS = {
    "when": field("at"),
    "what": lambda s: (
        SWITCHED[s["action"]] + (f" → {s['endsAtAfter'] or 'no end'}" if s["action"] in ("END", "MOVE_END") else "")
    ),
    "who": field("actor"),
    "from": field("address"),
}


def _switch_detail(s: dict[str, Any]) -> str:
    if s["action"] == "DRAW":
        return ": the pre-queue decided at the opening"
    if s["action"] == "ADD_STOCK":
        return f": +{s['stockAdded']:,}, {s['promoted']:,} to the earliest FAILs"
    return f" → {s['endsAtAfter'] or 'no end'}" if s["action"] in ("END", "MOVE_END") else ""


def switches(campaign_id: int, campaigns: list[dict[str, Any]]) -> None:
    """The operators' switches during the event: pause and resume the doors, end now, move the end; and their
    log. Each is recorded (who, when, what) and marked on the curves above."""
    chosen = next((c for c in campaigns if c["id"] == campaign_id), None)
    if chosen is None:
        return
    with st.expander("Switches during the event", icon=":material/toggle_on:", expanded=bool(chosen["paused"])):
        left, middle, right = st.columns(3)
        if chosen["paused"]:
            if left.button("Resume the doors", icon=":material/play_arrow:", key="resume", type="primary"):
                _switched(lambda: api().switch(campaign_id, "resume"), "resume the campaign")
        elif left.button("Pause the doors", icon=":material/pause:", key="pause"):
            _switched(lambda: api().switch(campaign_id, "pause"), "pause the campaign")
        left.caption("Paused, the doors answer 409 CAMPAIGN_PAUSED and enqueue nothing; the queue goes on.")
        sure = middle.checkbox("I mean it", key="end-sure", help="Ending cannot be undone but by moving the end")
        if middle.button("End now", icon=":material/stop:", key="end", disabled=not sure):
            _switched(lambda: api().switch(campaign_id, "end"), "end the campaign")
        tz = get_settings().tz
        with right.form("move-end", border=False):
            current = dt.datetime.fromisoformat(chosen["endsAt"]) if chosen["endsAt"] else None
            default = (current or dt.datetime.now(tz) + dt.timedelta(hours=1)).astimezone(tz)
            day = st.date_input("End on", value=default.date(), key="end-day")
            at = st.time_input("at", value=default.time().replace(microsecond=0), key="end-time", step=60)
            no_end = st.checkbox("No end", value=current is None, key="no-end")
            if st.form_submit_button("Move the end", icon=":material/schedule:"):
                ends_at = None if no_end else dt.datetime.combine(day, at, tzinfo=tz)
                _switched(lambda: api().move_end(campaign_id, ends_at), "move the end")
        with right.form("add-stock", border=False):
            units = st.number_input("Add stock", min_value=1, max_value=100_000, value=10, step=1, key="stock-units")
            if st.form_submit_button("Add", icon=":material/add:", help="The earliest FAILs win them first"):
                _switched(lambda: api().add_stock(campaign_id, int(units)), "add stock")
        log = attempt(lambda: api().switches(campaign_id), "read the switches")
        if log:
            table(log[::-1], SWITCH_COLUMNS)


def claims(campaign_id: int, campaigns: list[dict[str, Any]]) -> None:
    """A campaign whose winners must claim: wins claimed, waiting, released (their units to the next in line) and
    promoted, and over time."""
    chosen = next((c for c in campaigns if c["id"] == campaign_id), None)
    if chosen is None or not chosen.get("claimSeconds"):
        return
    summary = attempt(lambda: api().claims(campaign_id), "read the claims")
    if summary is None:
        return
    st.subheader(f"Claims — each win within {chosen['claimSeconds']:,} s")
    row = st.columns(4)
    row[0].metric("Claimed", f"{summary['claimed']:,}")
    row[1].metric("Waiting for their claim", f"{summary['waiting']:,}")
    row[2].metric("Released", f"{summary['released']:,}", help="not claimed in time: the unit went to the next in line")
    row[3].metric("Promoted", f"{summary['promoted']:,}", help="wins that came from a release or added stock")
    seconds = summary["perSecond"]
    if not seconds:
        return
    fig = _figure("Claims and releases so far", height=260)
    times = [dt.datetime.fromtimestamp(s["ts"], get_settings().tz) for s in seconds]
    for name, key, color in (
        ("won", "won", "#2ca02c"),
        ("claimed", "claimed", "#1f77b4"),
        ("released", "released", "#d62728"),
    ):
        running = 0
        cumulative = []
        for s in seconds:
            running += s[key]
            cumulative.append(running)
        fig.add_scatter(x=times, y=cumulative, mode="lines", name=name, line={"color": color, "shape": "hv"})
    st.plotly_chart(fig, width="stretch", key=f"claims-{campaign_id}")


def fair_opening(campaign_id: int, campaigns: list[dict[str, Any]]) -> None:
    """A campaign with a pre-queue: it filling up, the draw's commitment, and once drawn the seed revealed, the
    winners it decided and how to check it."""
    chosen = next((c for c in campaigns if c["id"] == campaign_id), None)
    if chosen is None or not chosen.get("preQueueSeconds"):
        return
    state = attempt(lambda: api().draw(campaign_id), "read the pre-queue")
    if state is None:
        return
    order = "a draw" if state["preQueueOrder"] == "DRAW" else "arrival order"
    st.subheader(f"Fair opening — a pre-queue of {chosen['preQueueSeconds']:,} s, decided in {order}")
    row = st.columns(3)
    row[0].metric("Held in the pre-queue", f"{state['preQueuedCount']:,}")
    drawn = state["drawnAt"] is not None
    won = state["drawWinners"] or 0
    row[1].metric("Decided", f"{won:,} winner{'' if won == 1 else 's'}" if drawn else "at the opening")
    row[2].metric("Opens", state["startsAt"] or "—", help="the pre-queue is decided then, everyone in it at once")
    if state["drawCommitment"]:
        st.markdown(f"Commitment (SHA-256 of the seed, published from creation): `{state['drawCommitment']}`")
    if drawn:
        if state["drawSeed"]:
            st.markdown(f"Seed, revealed at the draw ({state['drawnAt']}): `{state['drawSeed']}`")
        st.markdown(f"Pre-queue digest: `{state['preQueueDigest']}` — check it: `{state['verify']}`")
        st.download_button(
            "Download the pre-queue (CSV)",
            data=lambda: api().pre_queue_csv(campaign_id),
            file_name=f"campaign-{campaign_id}-pre-queue.csv",
            mime="text/csv",
            on_click="ignore",
            icon=":material/download:",
            key="pre-queue-download",
        )
    seconds = state["perSecond"]
    if seconds:
        fig = _figure("The pre-queue filling up", height=240)
        times = [dt.datetime.fromtimestamp(s["ts"], get_settings().tz) for s in seconds]
        fig.add_scatter(
            x=times,
            y=[s["total"] for s in seconds],
            mode="lines",
            name="held",
            line={"color": "#9467bd", "shape": "hv"},
        )
        st.plotly_chart(fig, width="stretch", key=f"pre-queue-{campaign_id}")


def _switched(action: Callable[[], object], what: str) -> None:
    if attempt(action, what) is not None:
        st.rerun()


REQUEST_COLUMNS = {
    "requestId": field("requestId"),
    "outcome": field("status"),
    "requested": field("requestedAt"),
    "decided": field("decidedAt"),
    "place in the log": lambda r: "—" if r["kafkaOffset"] is None else f"p{r['kafkaPartition']}@{r['kafkaOffset']}",
    "winners before it": field("winnersBefore"),
}


def after_the_event(campaign_id: int) -> None:
    """The winners list to ship the prizes, and the look-up that answers "why did I not win?"."""
    st.header("Winners")
    st.download_button(
        "Download the winners (CSV)",
        data=lambda: api().winners_csv(campaign_id),
        file_name=f"campaign-{campaign_id}-winners.csv",
        mime="text/csv",
        on_click="ignore",
        icon=":material/download:",
        help="In decision order: position, userId, requestId, decidedAt, Kafka partition and offset",
        key="winners-download",
    )
    st.header("Support look-up")
    with st.form("support-look-up"):
        query = st.text_input("userId or requestId", key="support-query", placeholder="e.g. 1042")
        look = st.form_submit_button("Look up", icon=":material/search:")
    query = query.strip()
    if not (look and query):
        return
    user_id = whole_number(query)
    params: dict[str, Any] = {"userId": user_id} if user_id is not None else {"requestId": query}
    found = attempt(lambda: api().participant(campaign_id, params), "look the user up")
    if found is None:
        return
    requests = found["requests"]
    st.caption(
        f"{'Simulated user' if found.get('simulated') else 'User'} {found['userId']}: {len(requests)} decided "
        f"request(s); the campaign had {found['totalStock']:,} "
        f"in stock and {found['winners']:,} winners"
        + (f", sold out at {found['soldOutAt']}" if found["soldOutAt"] else "")
    )
    if requests:
        table(requests, REQUEST_COLUMNS)
    for request_id in found["undecided"]:
        st.info(f"{request_id} was issued but is not decided: not accepted, or still waiting in the queue.")


st.title("Live")
campaigns = attempt(api().campaigns, "list the campaigns")
if campaigns is not None:
    chosen = pick_campaign(campaigns)
    if chosen is not None:
        invite(chosen)
        switches(chosen, campaigns)
        fair_opening(chosen, campaigns)
        live_panel(chosen)
        claims(chosen, campaigns)
        after_the_event(chosen)
recover_when_back()
