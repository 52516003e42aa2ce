"""Control: create a campaign, launch a bulk load, run the aggregation for a date and follow it."""

from __future__ import annotations

import datetime as dt
from functools import partial
from typing import Any

import streamlit as st

from dashboard.ui import api, attempt, field, pick_campaign, recover_when_back, table
from fcfs.days import local_today
from fcfs.settings import get_settings

st.title("Control")
MODES = {"KAFKA": "Kafka — 202, decided by the worker", "SYNC": "Synchronous — decided at once"}
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
    create = st.form_submit_button("Create campaign")
if create:
    created = attempt(lambda: api().create_campaign(name, int(stock), mode, int(weight)), "create the campaign")
    if created:
        placed = "" if created["partition"] is None else f", on partition {created['partition']}"
        st.success(
            f"Campaign #{created['id']} “{created['name']}” created with {created['totalStock']:,} in stock "
            f"({MODES[created['mode']]}{placed})."
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
