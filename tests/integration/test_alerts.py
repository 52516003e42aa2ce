"""Alerts against the real stack: two alerter processes (one sends, one stands by) post to a local HTTP receiver
that refuses its first deliveries — a campaign sold out (an event, once), a poison message dead-lettered (fired
once, resolved once when the window passes), a worker killed with SIGKILL (fired once it is silent, resolved
once a new worker holds its partition). Every alert reaches the receiver exactly once, after the retries."""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from confluent_kafka import Producer
from sqlalchemy import Engine, select, text

from fcfs.db import make_engine
from fcfs.kafka import producer_config
from fcfs.provision import ensure_database, migrate
from fcfs.schema import worker_heartbeat
from fcfs.settings import Settings
from tests.support import free_port, free_ports, settings_env, wait_until
from tests.support.ledger import campaign_row
from tests.support.processes import Processes
from tests.support.stack import stack_database


class Receiver:
    """A webhook receiver on loopback: refuses its first `refuse` posts (500), records every other body."""

    def __init__(self, refuse: int) -> None:
        self.refuse = refuse
        self.bodies: list[dict[str, Any]] = []
        self.refused = 0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                data = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                if receiver.refused < receiver.refuse:
                    receiver.refused += 1
                    self.send_response(500)
                else:
                    receiver.bodies.append(data)
                    self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def of(self, kind: str, subject: str | None = None) -> list[tuple[str, str]]:
        return [
            (b["state"], b["subject"])
            for b in self.bodies
            if b["kind"] == kind and (subject is None or b["subject"] == subject)
        ]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver(refuse=2)
    yield r
    r.server.shutdown()


def test_each_incident_reaches_the_webhook_once_when_it_fires_and_once_when_it_resolves(
    settings: Settings, database: Engine, processes: Processes, receiver: Receiver
) -> None:
    env = {"ALERT_WEBHOOK_URLS": receiver.url, "ALERT_INTERVAL_S": "0.3", "ALERT_WINDOW_S": "4"}
    command = [sys.executable, "-m", "batch.alerter"]
    alerters = [processes.start("alerter", command, settings_env(settings, **env)) for _ in (1, 2)]
    api = processes.api(settings)
    campaign_id = api.create_campaign(total_stock=3, name="Alerted campaign")
    worker = processes.worker(settings)
    with api.client(admin=True) as admin:
        body = {"campaignId": campaign_id, "count": 5, "userIdStart": 1}
        assert admin.post("/api/admin/test/participate-bulk", json=body).status_code == 202
    subject = f"campaign {campaign_id}"
    wait_until(lambda: receiver.of("SOLD_OUT", subject), 60, "the sell-out's alert")
    assert receiver.refused == 2  # the first deliveries were refused: retried until received

    poison = Producer(producer_config(settings))
    poison.produce(settings.kafka_topic, key=str(campaign_id).encode(), value=b"not json")
    assert poison.flush(10) == 0
    dlq = f"dead-letter topic {settings.dlq_topic}"
    wait_until(lambda: receiver.of("DEAD_LETTERS_GROWING", dlq) == [("FIRING", dlq)], 60, "dead letters growing")
    wait_until(lambda: len(receiver.of("DEAD_LETTERS_GROWING", dlq)) == 2, 60, "dead letters no longer growing")

    with database.connect() as conn:
        worker_id = conn.scalar(
            select(worker_heartbeat.c.worker_id).where(worker_heartbeat.c.topic == settings.kafka_topic)
        )
    worker.kill()
    lost = f"worker {worker_id}"
    wait_until(lambda: receiver.of("WORKER_LOST", lost), 60, "the lost worker's alert")
    processes.worker(settings)  # takes its partition over: resolved
    wait_until(lambda: len(receiver.of("WORKER_LOST", lost)) == 2, 60, "the lost worker's resolution")
    time.sleep(2)  # a few more rounds: nothing sent again
    assert all(p.popen.poll() is None for p in alerters)

    assert receiver.of("SOLD_OUT", subject) == [("EVENT", subject)]
    assert receiver.of("DEAD_LETTERS_GROWING", dlq) == [("FIRING", dlq), ("RESOLVED", dlq)]
    assert receiver.of("WORKER_LOST", lost) == [("FIRING", lost), ("RESOLVED", lost)]
    ids = [(b["alertId"], b["state"]) for b in receiver.bodies]
    assert len(ids) == len(set(ids))  # nothing delivered twice, by either alerter
    sold = next(b for b in receiver.bodies if b["kind"] == "SOLD_OUT" and b["subject"] == subject)
    assert sold["text"].startswith("[EVENT] SOLD_OUT: ") and "3 winners" in sold["text"]  # Slack's field

    with api.client(admin=True) as admin:  # the operators' list, newest first
        listed = admin.get("/api/admin/alerts", params={"limit": 200}).json()["data"]
    mine = [a for a in listed if a["subject"] in (subject, dlq, lost)]
    assert {(a["kind"], a["state"]) for a in mine} == {
        ("SOLD_OUT", "EVENT"),
        ("DEAD_LETTERS_GROWING", "RESOLVED"),
        ("WORKER_LOST", "RESOLVED"),
    }
    assert all(a["delivered"] for a in mine)
    assert sum("sending" in p.log() for p in alerters) == 1  # one process sends, the other stands by
    assert httpx.get(f"{api.base_url}/api/admin/alerts", timeout=10).status_code == 401


def test_a_stalled_partition_a_door_answering_503_and_a_crowd_finished_are_each_sent_once(
    settings: Settings, database: Engine, processes: Processes, receiver: Receiver
) -> None:
    """50 requests and no worker: the partition's lag stands still past ALERT_STALLED_S — fired once, resolved
    once a worker drains it. An API process whose Kafka is gone answers 503: the door's alert fired once,
    resolved once the window passes without a 503. A crowd run to its end: its event sent once."""
    with database.begin() as conn:  # (an incident of the door left open by an earlier test would hide this one)
        conn.execute(text("DELETE FROM alert WHERE kind = 'DOOR_UNAVAILABLE'"))
    env = {"ALERT_WEBHOOK_URLS": receiver.url, "ALERT_INTERVAL_S": "0.3", "ALERT_STALLED_S": "3", "ALERT_WINDOW_S": "3"}
    processes.start("alerter", [sys.executable, "-m", "batch.alerter"], settings_env(settings, **env))
    api = processes.api(settings, LAG_SAMPLE_INTERVAL_S="0.5")
    campaign_id = api.create_campaign(total_stock=10, name="Stalled campaign")
    with api.client(admin=True) as admin:
        body = {"campaignId": campaign_id, "count": 50, "userIdStart": 1}
        assert admin.post("/api/admin/test/participate-bulk", json=body).status_code == 202
    partition = campaign_row(database, campaign_id).kafka_partition
    stalled = f"partition {partition} of {settings.kafka_topic}"
    wait_until(lambda: receiver.of("LAG_STALLED", stalled) == [("FIRING", stalled)], 60, "the stalled partition")
    processes.worker(settings)
    wait_until(lambda: len(receiver.of("LAG_STALLED", stalled)) == 2, 60, "the partition moving again")

    cut_off = processes.api(
        settings, KAFKA_BOOTSTRAP_SERVERS=f"127.0.0.1:{free_port()}", KAFKA_PRODUCE_TIMEOUT_MS="500"
    )
    r = httpx.post(f"{cut_off.base_url}/api/campaigns/{campaign_id}/participation", json={"userId": 77}, timeout=30)
    assert (r.status_code, r.json()["errorCode"]) == (503, "KAFKA_UNAVAILABLE"), r.text
    door = "the participation door"
    wait_until(lambda: receiver.of("DOOR_UNAVAILABLE", door) == [("FIRING", door)], 60, "the door's 503")
    wait_until(lambda: len(receiver.of("DOOR_UNAVAILABLE", door)) == 2, 60, "the door's resolution")

    port = free_port()  # a crowd through the healthy door, to its end: the event sent once
    crowded = processes.api_on(settings, port, CROWD_TARGET_URL=f"http://127.0.0.1:{port}")
    with crowded.client(admin=True) as admin:
        r = admin.post("/api/admin/crowd", json={"campaignId": campaign_id, "users": 200, "seconds": 2})
        assert r.status_code == 202, r.text
        run = f"crowd run {r.json()['data']['runId']}"
    wait_until(lambda: receiver.of("CROWD_FINISHED", run) == [("EVENT", run)], 60, "the crowd's end")
    time.sleep(2)  # a few more rounds: nothing sent again
    assert receiver.of("CROWD_FINISHED", run) == [("EVENT", run)]
    assert receiver.of("LAG_STALLED", stalled) == [("FIRING", stalled), ("RESOLVED", stalled)]
    assert receiver.of("DOOR_UNAVAILABLE", door) == [("FIRING", door), ("RESOLVED", door)]
    assert "no progress" in next(b["text"] for b in receiver.bodies if b["kind"] == "LAG_STALLED")


def test_the_database_unavailable_to_the_alerter_is_sent_from_memory_then_recorded_and_resolved(
    settings: Settings, processes: Processes, receiver: Receiver
) -> None:
    """The alerter's own database stops: the outage is sent from memory — retried while the receiver refuses it,
    then not again however many rounds fail; when the database is back the incident is recorded with its
    resolution, which is sent once."""
    with stack_database("mariadb-alerter-test", free_ports(1)) as (server, start_db, stop_db):
        url = server + "fcfs_alerts"
        ensure_database(url)
        migrate(url)
        env = {"ALERT_WEBHOOK_URLS": receiver.url, "ALERT_INTERVAL_S": "0.3", "DATABASE_URL": url}
        alerter = processes.start("alerter", [sys.executable, "-m", "batch.alerter"], settings_env(settings, **env))
        wait_until(lambda: "sending" in alerter.log(), 30, "the alerter sending")
        stop_db()
        subject = "the database"
        wait_until(lambda: any(b["kind"] == "DATABASE_UNAVAILABLE" for b in receiver.bodies), 60, "the outage")
        time.sleep(2)  # rounds that fail again: not sent again
        start_db()
        wait_until(lambda: len(receiver.of("DATABASE_UNAVAILABLE", subject)) == 2, 60, "the resolution")
        time.sleep(2)
        sent = [b["state"] for b in receiver.bodies if b["kind"] == "DATABASE_UNAVAILABLE"]
        assert sent == ["FIRING", "RESOLVED"], receiver.bodies
        assert receiver.refused == 2  # the outage's first two deliveries refused: retried from memory
        engine = make_engine(url, pool_size=1)
        try:
            with engine.connect() as conn:
                rows = conn.execute(text("SELECT * FROM alert WHERE kind = 'DATABASE_UNAVAILABLE'")).all()
        finally:
            engine.dispose()
        assert len(rows) == 1 and rows[0].resolved_at > rows[0].opened_at and rows[0].done
        assert alerter.popen.poll() is None
