"""Kafka: offsets, lag and placed load per partition, the workers, the recent alerts, where campaigns are placed,
and the dead-letter topic with replay."""

from __future__ import annotations

import streamlit as st

from dashboard.ui import api, attempt, field, recover_when_back, table

st.title("Kafka")
PARTITION_COLUMNS = {
    "partition": field("partition"),
    "end offset": field("endOffset"),
    "committed offset": field("committedOffset"),
    "lag": field("lag"),
    "status": field("status"),
    "live campaigns": field("liveCampaigns"),
    "live weight": field("liveWeight"),
}
PLACEMENT_COLUMNS = {
    "partition": field("partition"),
    "campaign": lambda c: f"#{c['id']} {c['name']}",
    "weight": field("weight"),
    "status": field("status"),
    "stock left": field("currentStock"),
}
WORKER_COLUMNS = {
    "worker": field("workerId"),
    "status": field("status"),
    "partitions": field("partitions"),
    "decided": field("decidedTotal"),
    "dead letters": field("deadLetteredTotal"),
    "db retries": field("dbRetriesTotal"),
    "heartbeat": field("heartbeatAt"),
}
ALERT_COLUMNS = {
    "opened": field("openedAt"),
    "state": field("state"),
    "kind": field("kind"),
    "what": field("text"),
    "resolved": field("resolvedAt"),
    "delivered": field("delivered"),
}
DEAD_LETTER_COLUMNS = {
    "offset": field("dlqOffset"),
    "code": field("code"),
    "reason": field("reason"),
    "source": lambda d: f"p{d['sourcePartition']}@{d['sourceOffset']}",
    "value": lambda d: (d["value"] or "")[:120],
    "bytes": field("valueSize"),
    "replayed": field("replayed"),
}


@st.fragment(run_every=2)
def offsets_panel() -> None:
    view = attempt(api().kafka, "read the consumer group")
    if view is None:
        return
    cols = st.columns(4)
    cols[0].metric("Topic", view["topic"])
    cols[1].metric("Group state", view["groupState"] or "—")
    cols[2].metric("Total lag", f"{view['totalLag']:,}")
    cols[3].metric("Lag status", view["status"])
    table(view["partitions"], PARTITION_COLUMNS)
    workers = attempt(api().workers, "read the workers")
    if workers is not None:
        st.subheader("Workers")
        table(workers, WORKER_COLUMNS)


offsets_panel()

st.header("Alerts")
alerts = attempt(lambda: api().alerts(50), "read the alerts")
if alerts is not None:
    firing = [a for a in alerts if a["state"] == "FIRING"]
    st.caption(
        f"{len(firing)} firing. Sent by `python -m batch.alerter` to ALERT_WEBHOOK_URLS, once when an incident "
        "opens and once when it resolves; the Prometheus rules in `stack/prometheus/alerts.yml` say the same."
    )
    if alerts:
        table(alerts, ALERT_COLUMNS)
    else:
        st.info("No alerts yet.")

st.header("Placement")
campaigns = attempt(api().campaigns, "list the campaigns")
if campaigns is not None:
    placed = sorted(
        (c for c in campaigns if c["mode"] == "KAFKA"),
        key=lambda c: (c["partition"] is None, c["partition"] or 0, -c["id"]),
    )
    st.caption(
        "Each Kafka campaign's requests go to one partition, chosen at creation (the least weight of live "
        "campaigns) and kept for its life; grow the topic with `python -m fcfs.provision --partitions N`."
    )
    if placed:
        table(placed, PLACEMENT_COLUMNS)

st.header("Dead letters")
dlq = attempt(lambda: api().dead_letters(200), "read the dead-letter topic")
if dlq is not None:
    letters = dlq["deadLetters"]
    pending = [d for d in letters if not d["replayed"]]
    st.caption(f"{dlq['topic']}: {len(letters)} recent, {len(pending)} not replayed")
    if letters:
        table(letters, DEAD_LETTER_COLUMNS)
    if pending and st.button(f"Replay {len(pending)} pending dead letter(s)", key="replay"):
        result = attempt(api().replay_pending, "replay the dead letters")
        if result is not None:
            st.success(f"{result['replayed']} dead letter(s) published again; the worker decides them like any other.")
    elif not letters:
        st.info("The dead-letter topic is empty.")
recover_when_back()
