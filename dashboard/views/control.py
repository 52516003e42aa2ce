"""Control: create a campaign, launch a bulk load, run the aggregation for a date and follow it."""

from __future__ import annotations

import datetime as dt
from functools import partial
from typing import Any

import plotly.graph_objects as go
import streamlit as st

from dashboard.menu import live
from dashboard.ui import api, attempt, field, pick_campaign, recover_when_back, table
from fcfs.claims import MAX_CLAIM_SECONDS
from fcfs.days import local_today
from fcfs.draw import MAX_PRE_QUEUE_SECONDS
from fcfs.settings import get_settings

st.title("Control")
MODES = {"KAFKA": "Kafka — 202, decided by the worker", "SYNC": "Synchronous — decided at once"}
ORDERS = {"FIFO": "in arrival order", "DRAW": "by a draw (its seed committed now, revealed after)"}
tz = get_settings().tz
JOB_COLUMNS = {
    "id": field("jobExecutionId"),
    "date": field("date"),
    "trigger": field("trigger"),
    "status": field("status"),
    "campaigns": field("campaignsTotal"),
    "failed": field("campaignsFailed"),
    "ms": field("durationMs"),
    "started": field("startedAt"),
}


def event_fields(
    now: dt.datetime, opens_in_min: int, runs_for_min: int, pre_queue_s: int, order: str, claim_s: int
) -> dict[str, Any]:
    """The create request's optional fields from the form's: only those set (the API checks how they combine)."""
    fields: dict[str, Any] = {}
    opens = now + dt.timedelta(minutes=opens_in_min)
    if opens_in_min:
        fields["startsAt"] = opens.isoformat()
    if runs_for_min:
        fields["endsAt"] = (opens + dt.timedelta(minutes=runs_for_min)).isoformat()
    if pre_queue_s:
        fields |= {"preQueueSeconds": pre_queue_s, "preQueueOrder": order}
    if claim_s:
        fields["claimSeconds"] = claim_s
    return fields


def local(moment: str) -> str:
    """An API time (ISO 8601) as the operators' clock shows it (TIMEZONE)."""
    return f"{dt.datetime.fromisoformat(moment).astimezone(tz):%Y-%m-%d %H:%M:%S %Z}"


def event_summary(created: dict[str, Any]) -> str:
    """What the new campaign's event is, for the confirmation."""
    parts = []
    if created.get("startsAt"):
        parts.append(f"opens at {local(created['startsAt'])}")
    if created.get("preQueueSeconds"):
        parts.append(
            f"a pre-queue of {created['preQueueSeconds']:,} s before it, decided {ORDERS[created['preQueueOrder']]}"
        )
    if created.get("endsAt"):
        parts.append(f"ends at {local(created['endsAt'])}")
    if created.get("claimSeconds"):
        parts.append(f"winners claim within {created['claimSeconds']:,} s")
    return "; " + ", ".join(parts) if parts else ""


st.header("New campaign")
with st.form("create-campaign", clear_on_submit=False):
    name = st.text_input("Name", value="AirPods for the first 100", key="campaign-name")
    stock = st.number_input("Stock", min_value=1, max_value=100_000_000, value=100, step=1, key="campaign-stock")
    mode = st.radio(
        "Participation door",
        ["KAFKA", "SYNC"],
        format_func=MODES.__getitem__,
        horizontal=True,
        key="campaign-mode",
        help="Fixed for the campaign's life: each door refuses the other's campaigns, so no request overtakes.",
    )
    weight = st.number_input(
        "Expected traffic (weight)",
        min_value=1,
        max_value=1_000_000,
        value=1,
        step=1,
        key="campaign-weight",
        help="Relative to other campaigns: a Kafka campaign is placed on the partition with the least weight of "
        "live campaigns, and stays there.",
    )
    with st.expander("The event: opening, end, fair opening, claims (optional)"):
        timing = st.columns(2)
        opens_in = timing[0].number_input(
            "Opens in (minutes; 0: open now)", min_value=0, max_value=7 * 24 * 60, value=0, key="campaign-opens-in"
        )
        runs_for = timing[1].number_input(
            "Ends after (minutes from the opening; 0: no end)",
            min_value=0,
            max_value=365 * 24 * 60,
            value=0,
            key="campaign-runs-for",
        )
        fair = st.columns(2)
        pre_queue = fair[0].number_input(
            "Fair opening: a pre-queue of (seconds before the opening; 0: none)",
            min_value=0,
            max_value=MAX_PRE_QUEUE_SECONDS,
            value=0,
            key="campaign-pre-queue",
            help="Clicks in the pre-queue are accepted and held, then decided all at once at the opening: no "
            "millisecond race. Needs an opening (Opens in) and the Kafka door.",
        )
        order = fair[1].radio(
            "The pre-queue decided",
            list(ORDERS),
            format_func=ORDERS.__getitem__,
            horizontal=True,
            key="campaign-pre-queue-order",
        )
        claim = st.number_input(
            "Winners must claim within (seconds; 0: no claim)",
            min_value=0,
            max_value=MAX_CLAIM_SECONDS,
            value=0,
            key="campaign-claim",
            help="A win not claimed in time goes to the next in line.",
        )
    create = st.form_submit_button("Create campaign")
if create:
    event = event_fields(dt.datetime.now(dt.UTC), int(opens_in), int(runs_for), int(pre_queue), order, int(claim))
    created = attempt(
        lambda: api().create_campaign(name, int(stock), mode, int(weight), **event), "create the campaign"
    )
    if created:
        placed = "" if created["partition"] is None else f", on partition {created['partition']}"
        st.success(
            f"Campaign #{created['id']} “{created['name']}” created with {created['totalStock']:,} in stock "
            f"({MODES[created['mode']]}{placed}){event_summary(created)}."
        )

st.header("Bulk load")
campaigns = attempt(api().campaigns, "list the campaigns")
if campaigns is not None:
    target = pick_campaign(campaigns, key="bulk-campaign")
    count = st.number_input(
        "Requests (distinct users)", min_value=1, max_value=100_000, value=5_000, step=1000, key="bulk-count"
    )
    if target is not None and st.button("Launch bulk load", key="bulk-launch"):
        sent = attempt(partial(api().participate_bulk, target, int(count)), "launch the load")
        if sent:
            st.success(
                f"{sent['requestCount']:,} requests published to campaign #{sent['campaignId']} "
                "— watch them arrive on the Live page."
            )

st.header("Crowd")
st.caption(
    "A storm through the real door: simulated users (and a share of them clicking again) over a few seconds, "
    "sent by a process of its own to the public participation endpoint, each user from one of many loopback "
    "addresses. What the crowd measures — its answers and their latency — shows below while it runs; the "
    "Live page shows what the system did with it."
)
if campaigns is not None:
    crowd_target = pick_campaign(campaigns, key="crowd-campaign")
    crowd_cols = st.columns(6)
    crowd_users = crowd_cols[0].number_input(
        "Users", min_value=1, max_value=100_000, value=20_000, step=1000, key="crowd-users"
    )
    crowd_seconds = crowd_cols[1].number_input("Seconds", min_value=1, max_value=600, value=20, key="crowd-seconds")
    crowd_repeat = crowd_cols[2].slider("Repeat clicks (%)", min_value=0, max_value=50, value=10, key="crowd-repeat")
    crowd_shape = crowd_cols[3].radio(
        "Shape",
        ["flat", "rush"],
        horizontal=True,
        key="crowd-shape",
        help="flat: evenly over the time · rush: most users at the opening, fewer and fewer after",
    )
    crowd_connections = crowd_cols[4].number_input(
        "Connections", min_value=1, max_value=1000, value=200, key="crowd-connections"
    )
    crowd_wait = crowd_cols[5].slider(
        "Wait for the outcome (%)",
        min_value=0,
        max_value=100,
        value=0,
        key="crowd-wait",
        help="the share of users who, after their 202, wait for their outcome (held look-ups) as people do",
    )
    if crowd_target is not None and st.button("Start the crowd", key="crowd-start", icon=":material/groups:"):
        crowd_campaign: int = crowd_target
        run = attempt(
            lambda: api().start_crowd(
                crowd_campaign,
                int(crowd_users),
                float(crowd_seconds),
                crowd_repeat / 100,
                str(crowd_shape),
                int(crowd_connections),
                crowd_wait / 100,
            ),
            "start the crowd",
        )
        if run:
            st.session_state["crowd-run"] = run["runId"]


def _crowd_chart(per_second: list[dict[str, Any]]) -> go.Figure:
    times = [dt.datetime.fromisoformat(s["at"]) for s in per_second]
    fig = go.Figure()
    fig.update_layout(
        title="The crowd, per second",
        height=280,
        margin={"l": 10, "r": 10, "t": 40, "b": 10},
        legend={"orientation": "h", "y": -0.25},
        yaxis={"title": "requests"},
        yaxis2={"title": "ms", "overlaying": "y", "side": "right", "rangemode": "tozero"},
    )
    fig.add_bar(x=times, y=[s["accepted"] for s in per_second], name="accepted", marker_color="#1f77b4")
    fig.add_bar(
        x=times, y=[s["refused"] + s["failed"] for s in per_second], name="refused / no answer", marker_color="#d62728"
    )
    fig.update_layout(barmode="stack")
    for name, key, dash in (("p50", "p50Ms", "dot"), ("p95", "p95Ms", "solid"), ("p99", "p99Ms", "dash")):
        fig.add_scatter(
            x=times, y=[s[key] for s in per_second], name=f"{name} ms", yaxis="y2", mode="lines", line={"dash": dash}
        )
    return fig


@st.fragment(run_every=1)
def crowd_panel() -> None:
    run_id = st.session_state.get("crowd-run")
    if run_id is None:
        runs = attempt(lambda: api().crowd_runs(1), "read the crowd runs")
        run_id = runs[0]["runId"] if runs else None
    if run_id is None:
        return
    run = attempt(lambda: api().crowd_run(run_id), "read the crowd run")
    if not run:
        return
    active = run["status"] in ("STARTING", "RUNNING")
    show = st.info if active else st.success if run["status"] == "FINISHED" else st.warning
    show(
        f"Crowd run #{run['runId']} on campaign #{run['campaignId']}: **{run['status']}**"
        + (" (stop requested)" if run["stopRequested"] and active else "")
        + f" — {run['users']:,} users, {run['planned']:,} clicks over {run['seconds']:g} s ({run['shape']})"
        + (f" — {run['error']}" if run["error"] else "")
    )
    st.progress(min(run["sent"] / run["planned"], 1.0) if run["planned"] else 0.0)
    row = st.columns(6)
    row[0].metric("Sent", f"{run['sent']:,}")
    row[1].metric("Accepted", f"{run['accepted']:,}")
    row[2].metric("Refused", f"{run['refused']:,}")
    row[3].metric("No answer", f"{run['failed']:,}")
    row[4].metric(
        "p95 latency",
        "–" if run["p95Ms"] is None else f"{run['p95Ms']:,.0f} ms",
        help=f"p50 {run['p50Ms']} ms · p99 {run['p99Ms']} ms · max {run['maxMs']} ms",
    )
    row[5].metric("Behind schedule", f"{run['behindS']:.1f} s", help="how far the crowd fell behind its plan")
    if run.get("waitShare"):
        learned = run.get("outcomes") or {}
        waiting = st.columns(4)
        waiting[0].metric("Learned their outcome", f"{sum(v for k, v in learned.items() if k != 'no outcome'):,}")
        waiting[1].metric("Winners among them", f"{learned.get('SUCCESS', 0):,}")
        waiting[2].metric(
            "Click to outcome p95",
            "–" if run.get("outcomeP95Ms") is None else f"{run['outcomeP95Ms'] / 1000:,.1f} s",
            help=f"p50 {run.get('outcomeP50Ms')} ms · p99 {run.get('outcomeP99Ms')} ms · "
            f"max {run.get('outcomeMaxMs')} ms",
        )
        waiting[3].metric("No outcome in time", f"{learned.get('no outcome', 0):,}")
    refusals = {k: v for k, v in run["answers"].items() if not k.startswith("20")}
    if refusals:
        st.caption("Answers other than success: " + ", ".join(f"{k}: {v:,}" for k, v in sorted(refusals.items())))
    if run.get("perSecond"):
        st.plotly_chart(_crowd_chart(run["perSecond"]), width="stretch", key="crowd-chart")
    cols = st.columns(2)
    cols[0].page_link(
        live(),
        label="Watch the campaign on the Live page",
        icon=":material/monitoring:",
        query_params={"campaign": str(run["campaignId"])},
    )
    if (
        active
        and not run["stopRequested"]
        and cols[1].button("Stop the crowd", key="crowd-stop", icon=":material/stop:")
    ):
        attempt(lambda: api().stop_crowd(run_id), "stop the crowd")


crowd_panel()

st.header("Daily aggregation")
day = st.date_input(
    "Date", value=local_today(tz) - dt.timedelta(days=1), max_value=local_today(tz), key="aggregate-date"
)
if st.button("Run aggregation", key="aggregate-run"):
    started = attempt(
        lambda: api().aggregate(day),
        "start the aggregation",
    )
    if started:
        st.session_state["job"] = started["jobExecutionId"]


def _job_line(job: dict[str, Any]) -> str:
    took = f" in {job['durationMs']:,} ms" if job.get("durationMs") is not None else ""
    return (
        f"Job #{job['jobExecutionId']} for {job['date']}: **{job['status']}**{took} — "
        f"{job['campaignsTotal']} campaign(s), {job['campaignsFailed']} failed"
    )


@st.fragment(run_every=1)
def job_panel() -> None:
    job_id = st.session_state.get("job")
    if job_id is not None:
        job = attempt(lambda: api().job(job_id), "read the job")
        if job:
            show = st.success if job["status"] == "COMPLETED" else st.info if job["status"] == "STARTED" else st.error
            show(_job_line(job))
            if job.get("error"):
                st.caption(job["error"])
    history = attempt(lambda: api().job_history(20), "read the job history")
    if history is not None:
        st.subheader("Job history")
        table(history, JOB_COLUMNS)


job_panel()

st.header("Demo history")
st.caption(
    "A fresh install has no history, so the Analytics page is empty: generate one-day campaigns of the "
    "past days (named “[generated] …”, with an opening rush and repeat clicks, decided by the worker's rule) "
    "into the normal tables, then aggregate those days."
)
cols = st.columns(3)
demo_days = cols[0].number_input("Days", min_value=1, max_value=30, value=7, key="demo-days")
demo_campaigns = cols[1].number_input("Campaigns a day", min_value=1, max_value=10, value=3, key="demo-campaigns")
demo_rows = cols[2].number_input(
    "Requests in all", min_value=1, max_value=1_000_000, value=100_000, step=10_000, key="demo-rows"
)
if st.button("Generate demo history", key="demo-generate", icon=":material/auto_awesome:"):
    with st.spinner("Generating and aggregating…"):
        made = attempt(
            lambda: api().demo_history(int(demo_days), int(demo_campaigns), int(demo_rows)), "generate the history"
        )
    if made:
        st.success(
            f"{made['campaigns']} generated campaigns with {made['rows']:,} requests in {made['seconds']} s; "
            f"{len(made['jobs'])} day(s) aggregated — see the Analytics page."
        )
recover_when_back()
