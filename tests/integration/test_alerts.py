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
from sqlalchemy import Engine, select

from fcfs.kafka import producer_config
from fcfs.schema import worker_heartbeat
from fcfs.settings import Settings
from tests.support import settings_env, wait_until
from tests.support.processes import Processes


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
