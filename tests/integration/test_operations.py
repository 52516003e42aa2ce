"""What operators use on the running system: the DLQ and its replay, worker heartbeats, Kafka lag, metrics."""

from __future__ import annotations

import base64
import hashlib
import threading
import time
from typing import Any

import httpx
import orjson
import psutil
from confluent_kafka import Producer
from sqlalchemy import Engine

from fcfs.db import utcnow
from fcfs.kafka import producer_config
from fcfs.schema import campaign
from fcfs.settings import Settings
from tests.support import free_port, signed, wait_until
from tests.support.ledger import history_rows
from tests.support.processes import Processes

RESTORED_CAMPAIGN = 555_000_111


def test_dead_letters_are_listed_and_replayed_once_after_the_cause_is_fixed(
    settings: Settings, database: Engine, processes: Processes
) -> None:
    api = processes.api(settings)
    campaign_id = api.create_campaign(total_stock=5)
    orphan = signed(settings, RESTORED_CAMPAIGN, 77)
    producer = Producer(producer_config(settings))
    producer.produce(settings.kafka_topic, signed(settings, campaign_id, 1).to_json(), b"x")
    producer.produce(settings.kafka_topic, orphan.to_json(), orphan.key())
    producer.produce(settings.kafka_topic, b"\xde\xad\xbe\xef", b"junk")
    assert producer.flush(10) == 0
    assert processes.worker(settings, "--drain").wait(60) == 0

    with api.client(admin=True) as client:
        listed = client.get("/api/admin/dlq").json()["data"]["deadLetters"]
        assert len(listed) == 2
        by_reason = {d["reason"].split(" ")[0]: d for d in listed}
        unknown = next(d for d in listed if d["reason"] == f"unknown campaign {RESTORED_CAMPAIGN}")
        junk = next(d for d in listed if d is not unknown)
        assert orjson.loads(unknown["value"])["requestId"] == orphan.request_id and unknown["valueEncoding"] == "utf-8"
        assert unknown["code"] == "UNKNOWN_CAMPAIGN" and junk["code"] == "INVALID_EVENT"
        assert junk["valueEncoding"] == "base64" and junk["sourceTopic"] == settings.kafka_topic
        assert not any(d["replayed"] for d in listed) and by_reason

        # the cause is fixed: the campaign is back (e.g. restored from a backup)
        with database.begin() as conn:
            conn.execute(
                campaign.insert().values(
                    id=RESTORED_CAMPAIGN, name="restored", total_stock=1, current_stock=1, created_at=utcnow()
                )
            )
        position = {"partition": unknown["dlqPartition"], "offset": unknown["dlqOffset"]}
        first = client.post("/api/admin/dlq/replay", json={"offsets": [position]}).json()["data"]
        assert first["results"][0]["status"] == "REPLAYED"
        again = client.post("/api/admin/dlq/replay", json={"offsets": [position, position]}).json()["data"]
        assert [r["status"] for r in again["results"]] == ["ALREADY_REPLAYED"]
        r = client.post("/api/admin/dlq/replay", json={})
        assert (r.status_code, r.json()["errorCode"]) == (422, "VALIDATION_ERROR")

    assert processes.worker(settings, "--drain").wait(60) == 0
    rows = history_rows(database, RESTORED_CAMPAIGN)
    assert [(r.request_id, r.status.value) for r in rows] == [(orphan.request_id, "SUCCESS")]  # decided once

    with api.client(admin=True) as client:  # replaying the rest: the junk fails again, into the DLQ once more
        rest = client.post("/api/admin/dlq/replay", json={"allPending": True}).json()["data"]
        assert [r["status"] for r in rest["results"]] == ["REPLAYED"]
        assert processes.worker(settings, "--drain").wait(60) == 0
        listed = client.get("/api/admin/dlq").json()["data"]["deadLetters"]
    assert len(listed) == 3 and sum(d["replayed"] for d in listed) == 2
    assert len(history_rows(database, RESTORED_CAMPAIGN)) == 1


def test_dead_letters_are_listed_as_previews_and_read_whole_one_at_a_time(
    settings: Settings, database: Engine, processes: Processes
) -> None:
    api = processes.api(settings)
    long_text = ("é" * 3000).encode()  # 6,000 bytes of text: the preview must not cut a character in half
    huge = b"\xff" * 900_000  # too big for the DLQ: stored truncated, with its size and hash
    producer = Producer(producer_config(settings))
    for value in (long_text, huge):
        producer.produce(settings.kafka_topic, value, b"k")
    assert producer.flush(10) == 0
    assert processes.worker(settings, "--drain").wait(60) == 0

    with api.client(admin=True) as client:
        listed = client.get("/api/admin/dlq").json()["data"]["deadLetters"]
        text, cut = sorted(listed, key=lambda d: d["sourceOffset"])
        assert text["value"] == "é" * 512 and text["valueSize"] == 6000 and text["valueComplete"] is False
        assert cut["valueEncoding"] == "base64" and len(base64.b64decode(cut["value"])) == 1024
        assert (cut["truncated"], cut["originalSize"], cut["valueSize"]) == ("value", 900_001, 65_536)
        assert cut["originalSha256"] == hashlib.sha256(b"k" + huge).hexdigest()

        whole = client.get(f"/api/admin/dlq/{text['dlqPartition']}/{text['dlqOffset']}").json()["data"]
        assert (
            whole["value"] == long_text.decode() and whole["valueComplete"] is True and whole["code"] == "INVALID_EVENT"
        )
        whole = client.get(f"/api/admin/dlq/{cut['dlqPartition']}/{cut['dlqOffset']}").json()["data"]
        assert base64.b64decode(whole["value"]) == huge[:65_536]
        missing = client.get(f"/api/admin/dlq/0/{cut['dlqOffset'] + 100}")
        assert (missing.status_code, missing.json()["errorCode"]) == (404, "DEAD_LETTER_NOT_FOUND")
        position = {"partition": cut["dlqPartition"], "offset": cut["dlqOffset"]}
        replayed = client.post("/api/admin/dlq/replay", json={"offsets": [position]}).json()["data"]
        assert replayed["results"][0]["status"] == "TRUNCATED"  # only a preview is kept: nothing to publish


def test_workers_kafka_lag_and_metrics_are_visible(settings: Settings, database: Engine, processes: Processes) -> None:
    api = processes.api(settings)
    campaign_id = api.create_campaign(total_stock=10)
    with api.client(admin=True) as client:
        assert (
            client.post("/api/admin/test/participate-bulk", json={"campaignId": campaign_id, "count": 300}).status_code
            == 202
        )
        lag = client.get("/api/admin/kafka").json()["data"]
        assert lag["totalLag"] == 300 and lag["partitions"][0]["endOffset"] == 300
        assert lag["topic"] == settings.kafka_topic

        metrics_port = free_port()
        worker = processes.worker(settings, WORKER_METRICS_PORT=str(metrics_port))

        def caught_up() -> bool:
            return bool(client.get("/api/admin/kafka").json()["data"]["totalLag"] == 0)

        wait_until(caught_up, 60, "the worker to catch up")
        workers = [
            w
            for w in client.get("/api/admin/workers").json()["data"]
            if w["consumerGroup"] == settings.kafka_consumer_group
        ]
        wait_until(
            lambda: any(
                w["decidedTotal"] == 300
                for w in [
                    w
                    for w in client.get("/api/admin/workers").json()["data"]
                    if w["consumerGroup"] == settings.kafka_consumer_group
                ]
            ),
            10,
            "the heartbeat",
        )
        assert workers and workers[0]["alive"] and workers[0]["partitions"] == [0]
        assert workers[0]["status"] == "RUNNING"
        scraped = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics").text
        assert 'fcfs_worker_decisions_total{outcome="SUCCESS"} 10.0' in scraped
        assert 'fcfs_worker_decisions_total{outcome="FAIL"} 290.0' in scraped
        assert 'fcfs_worker_consumer_lag{partition="0"} 0.0' in scraped
        assert lag["groupState"] in {"EMPTY", "UNKNOWN", "DEAD"}
        assert client.get("/api/admin/kafka").json()["data"]["groupState"] == "STABLE"

        assert worker.terminate(30) == 0
        stopped = [
            w
            for w in client.get("/api/admin/workers").json()["data"]
            if w["consumerGroup"] == settings.kafka_consumer_group
        ]
        assert stopped[0]["state"] == stopped[0]["status"] == "STOPPED" and not stopped[0]["alive"]

        def by_id() -> dict[str, dict[str, Any]]:
            listed = client.get("/api/admin/workers").json()["data"]
            return {w["workerId"]: w for w in listed if w["consumerGroup"] == settings.kafka_consumer_group}

        killed = processes.worker(settings)
        wait_until(lambda: any(w["status"] == "RUNNING" for w in by_id().values()), 30, "a second worker")
        killed.kill()  # SIGKILL: no word to anyone; its last heartbeat says RUNNING
        lost = wait_until(
            lambda: [w for w in by_id().values() if w["status"] == "LOST"], 30, "the killed worker to show as LOST"
        )
        assert len(lost) == 1 and lost[0]["state"] == "RUNNING" and not lost[0]["alive"]
        assert by_id()[stopped[0]["workerId"]]["status"] == "STOPPED"


def test_a_bulk_load_does_not_hold_up_other_requests(settings: Settings, processes: Processes) -> None:
    """100,000 requests are signed and handed to Kafka off the event loop: the process keeps answering. Bulk
    loads follow one another until 20 probes were each sent and answered while one was in flight, however
    quick a bulk load is on this machine."""
    api = processes.api(settings)
    campaign_id = api.create_campaign(total_stock=10)
    slowest, during, bulks = 0.0, 0, 0
    in_flight = threading.Event()
    enough = threading.Event()
    with httpx.Client(base_url=api.base_url, timeout=30) as probe, api.client(admin=True) as admin:

        def bulk() -> None:
            nonlocal bulks
            while not enough.is_set() and bulks < 50:
                body = {"campaignId": campaign_id, "count": 100_000, "userIdStart": 1 + bulks * 100_000}
                in_flight.set()
                r = admin.post("/api/admin/test/participate-bulk", json=body, timeout=120)
                in_flight.clear()
                assert r.status_code == 202, r.text
                bulks += 1

        loader = threading.Thread(target=bulk)
        loader.start()
        while loader.is_alive():
            if not in_flight.wait(0.05):
                continue
            started = time.perf_counter()
            assert probe.get("/health/live").status_code == 200
            elapsed = time.perf_counter() - started
            if in_flight.is_set():  # sent and answered while a bulk load was in flight
                during += 1
                slowest = max(slowest, elapsed)
                if during >= 20:
                    enough.set()
            time.sleep(0.05)
        loader.join()
    assert during >= 20, f"only {during} probes during {bulks} bulk loads"
    assert slowest < 0.5, f"a request waited {slowest:.2f} s behind the bulk load"


def test_api_nice_lowers_the_priority_of_every_server_process(settings: Settings, processes: Processes) -> None:
    """API_NICE: the crowd's door below the operators' plane on a shared machine — its server and each of
    its worker processes."""
    api = processes.api(settings, workers=2, API_NICE="7")
    server = psutil.Process(api.proc.popen.pid)
    workers = wait_until(lambda: len(c := server.children(recursive=True)) >= 2 and c, 20, "the worker processes")
    assert {p.nice() for p in [server, *workers]} == {psutil.Process().nice() + 7}
    with api.client() as client:
        assert client.get("/health/live").status_code == 200
