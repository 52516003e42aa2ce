"""The data behind the live dashboard: per-second timeline, throughput, lag samples and their status."""

from __future__ import annotations

import itertools
import threading
import time

import httpx
from sqlalchemy import Engine

from fcfs.settings import Settings
from tests.support import wait_until
from tests.support.ledger import assert_counters_match_history
from tests.support.processes import Processes


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
    with api.client(admin=True) as client:
        data = client.get(f"/api/campaigns/{campaign_id}/timeline").json()["data"]
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

    with api.client() as client:  # an incremental poll returns only newer points, with the same running totals
        later = client.get(f"/api/campaigns/{campaign_id}/timeline", params={"after": points[0]["ts"]}).json()["data"]
        assert later["points"] == points[1:]
        none = client.get(f"/api/campaigns/{campaign_id}/timeline", params={"after": last["ts"]}).json()["data"]
        assert none["points"] == []
        missing = client.get("/api/campaigns/987654321/timeline")
        assert (missing.status_code, missing.json()["errorCode"]) == (404, "CAMPAIGN_NOT_FOUND")


def test_decisions_per_second_follow_a_steady_intake(settings: Settings, processes: Processes) -> None:
    """`decidedPerSecond` (all campaigns, the last 5 complete seconds) read while requests keep coming, whatever
    the machine's speed: 20 a second for as long as it takes, so the window is never empty; 0 once they stop."""
    api = processes.api(settings)
    campaign_id = api.create_campaign(total_stock=10)

    def rate(client: httpx.Client) -> float:
        return float(client.get("/api/admin/kafka").json()["data"]["decidedPerSecond"])

    with api.client(admin=True) as client:
        wait_until(lambda: rate(client) == 0, 30, "earlier tests' decisions to leave the window", 0.5)
    processes.worker(settings)
    stop = threading.Event()

    def feed() -> None:
        with api.client(admin=True) as client:
            start = 1
            while not stop.is_set():
                body = {"campaignId": campaign_id, "count": 10, "userIdStart": start}
                assert client.post("/api/admin/test/participate-bulk", json=body).status_code == 202
                start += 10
                stop.wait(0.5)

    feeder = threading.Thread(target=feed, daemon=True)
    feeder.start()
    try:
        with api.client(admin=True) as client:
            seen = wait_until(lambda: rate(client) or None, 60, "decisions per second above 0 under the intake", 0.5)
        assert 0 < seen <= 100, seen  # 20 a second offered: a figure of that order, not a count of all history
    finally:
        stop.set()
        feeder.join(10)
    with api.client(admin=True) as client:
        wait_until(lambda: rate(client) == 0, 30, "decisions per second back to 0 once the intake stops", 0.5)


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
