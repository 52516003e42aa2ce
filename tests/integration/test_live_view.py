"""The data behind the live dashboard: per-second timeline, throughput, lag samples and their status."""

from __future__ import annotations

import itertools
import time

from sqlalchemy import Engine

from fcfs.settings import Settings
from tests.support import Processes, assert_counters_match_history, wait_until


def test_timeline_adds_up_to_the_counters(settings: Settings, database: Engine, processes: Processes) -> None:
    api = processes.api(settings)
    campaign_id = api.create_campaign(total_stock=100)
    with api.client(admin=True) as client:
        for start in (1, 301):
            assert (
                client.post(
                    "/api/admin/test/participate-bulk",
                    json={"campaignId": campaign_id, "count": 400, "userIdStart": start},
                ).status_code
                == 202
            )
    assert processes.worker(settings, "--drain", WORKER_BATCH_SIZE="100").wait(60) == 0
    counts = assert_counters_match_history(database, campaign_id)
    time.sleep(1.1)
    with api.client(admin=True) as client:
        data = client.get(f"/api/campaigns/{campaign_id}/timeline").json()["data"]
        throughput = client.get("/api/admin/kafka").json()["data"]["decidedPerSecond"]
    points = data["points"]
    assert data["totalStock"] == 100 and points
    assert sum(p["success"] for p in points) == counts["SUCCESS"] == 100
    assert sum(p["fail"] for p in points) == counts["FAIL"]
    assert sum(p["duplicate"] for p in points) == counts["DUPLICATE"] == 100
    last = points[-1]
    assert (last["cumulativeSuccess"], last["cumulativeFail"], last["cumulativeDuplicate"]) == (
        counts["SUCCESS"],
        counts["FAIL"],
        counts["DUPLICATE"],
    )
    assert last["stockLeft"] == 0
    assert [p["ts"] for p in points] == sorted({p["ts"] for p in points})
    assert all(a["stockLeft"] >= b["stockLeft"] for a, b in itertools.pairwise(points))
    assert throughput > 0

    with api.client() as client:  # an incremental poll returns only newer points, with the same running totals
        later = client.get(f"/api/campaigns/{campaign_id}/timeline", params={"after": points[0]["ts"]}).json()["data"]
        assert later["points"] == points[1:]
        none = client.get(f"/api/campaigns/{campaign_id}/timeline", params={"after": last["ts"]}).json()["data"]
        assert none["points"] == []
        missing = client.get("/api/campaigns/987654321/timeline")
        assert (missing.status_code, missing.json()["errorCode"]) == (404, "CAMPAIGN_NOT_FOUND")


def test_lag_is_sampled_and_a_stalled_consumer_is_flagged(settings: Settings, processes: Processes) -> None:
    api = processes.api(settings)
    campaign_id = api.create_campaign(total_stock=10)
    with api.client(admin=True) as client:
        assert (
            client.post("/api/admin/test/participate-bulk", json={"campaignId": campaign_id, "count": 500}).status_code
            == 202
        )

        def status() -> str:
            return str(client.get("/api/admin/kafka").json()["data"]["status"])

        wait_until(lambda: status() == "STALLED", 20, "the lag status to turn STALLED without a worker", interval_s=0.5)
        processes.worker(settings)
        wait_until(
            lambda: status() == "OK" and client.get("/api/admin/kafka").json()["data"]["totalLag"] == 0,
            60,
            "the worker to catch up",
            interval_s=0.5,
        )
        time.sleep(1.5)
        history = client.get("/api/admin/kafka/lag-history", params={"seconds": 120}).json()["data"]
    samples = history["partitions"][0]["samples"]
    assert max(s["lag"] for s in samples) == 500
    assert samples[-1]["lag"] == 0
    assert [s["ts"] for s in samples] == sorted(s["ts"] for s in samples)
