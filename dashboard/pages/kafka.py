"""Kafka: offsets and lag per partition, the workers, and the dead-letter topic with replay."""

from __future__ import annotations

import streamlit as st

from dashboard.ui import api, attempt, recover_when_back

st.title("Kafka")


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
    st.dataframe(
        [
            {
                "partition": p["partition"],
                "end offset": p["endOffset"],
                "committed offset": p["committedOffset"],
                "lag": p["lag"],
                "status": p["status"],
            }
            for p in view["partitions"]
        ],
        hide_index=True,
        use_container_width=True,
    )
    workers = attempt(lambda: api().call("GET", "/api/admin/workers"), "read the workers")
    if workers is not None:
        st.subheader("Workers")
        st.dataframe(
            [
                {
                    "worker": w["workerId"],
                    "alive": w["alive"],
                    "state": w["state"],
                    "partitions": w["partitions"],
                    "decided": w["decidedTotal"],
                    "dead letters": w["deadLetteredTotal"],
                    "db retries": w["dbRetriesTotal"],
                    "heartbeat": w["heartbeatAt"],
                }
                for w in workers
            ],
            hide_index=True,
            use_container_width=True,
        )


offsets_panel()

st.header("Dead letters")
dlq = attempt(lambda: api().call("GET", "/api/admin/dlq", params={"limit": 200}), "read the dead-letter topic")
if dlq is not None:
    letters = dlq["deadLetters"]
    pending = [d for d in letters if not d["replayed"]]
    st.caption(f"{dlq['topic']}: {len(letters)} recent, {len(pending)} not replayed")
    if letters:
        st.dataframe(
            [
                {
                    "offset": d["dlqOffset"],
                    "reason": d["reason"],
                    "source": f"p{d['sourcePartition']}@{d['sourceOffset']}",
                    "value": (d["value"] or "")[:120],
                    "replayed": d["replayed"],
                }
                for d in letters
            ],
            hide_index=True,
            use_container_width=True,
        )
    if pending and st.button(f"Replay {len(pending)} pending dead letter(s)", key="replay"):
        result = attempt(
            lambda: api().call("POST", "/api/admin/dlq/replay", json={"allPending": True}), "replay the dead letters"
        )
        if result is not None:
            st.success(f"{result['replayed']} dead letter(s) published again; the worker decides them like any other.")
    elif not letters:
        st.info("The dead-letter topic is empty.")
recover_when_back()
