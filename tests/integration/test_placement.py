"""Campaigns placed on partitions, and the topic grown online, on the real broker and database."""

from __future__ import annotations

import re
import subprocess
import sys
import threading
from collections import Counter
from typing import Any

import httpx
import orjson
from confluent_kafka import Producer
from sqlalchemy import Engine, func, or_, select

from fcfs.db import utcnow
from fcfs.kafka import producer_config, read_topic
from fcfs.placement import key_partition
from fcfs.schema import campaign, participation_history, worker_heartbeat
from fcfs.settings import Settings
from tests.support import ROOT, settings_env, signed, wait_until
from tests.support.ledger import assert_decided_as_the_log_says, campaign_row, decided_count
from tests.support.processes import Api, Processes


def _provision(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "fcfs.provision", *args],
        cwd=ROOT,
        env=settings_env(settings),
        capture_output=True,
        text=True,
        timeout=120,
    )


def _post_all(api: Api, campaign_id: int, users: list[int], answers: list[int]) -> None:
    with httpx.Client(base_url=api.base_url, timeout=30) as client:
        for user in users:
            r = client.post(f"/api/campaigns/{campaign_id}/participation", json={"userId": user})
            answers.append(r.status_code)


def _campaign(api: Api, **fields: Any) -> dict[str, Any]:
    with api.client(admin=True) as client:
        r = client.post("/api/admin/campaigns", json={"name": "placed", "totalStock": 100, **fields})
    assert r.status_code == 201, r.text
    return dict(r.json()["data"])


def test_campaigns_keep_their_partitions_while_the_topic_grows(
    settings: Settings, database: Engine, processes: Processes
) -> None:
    api = processes.api(settings, workers=2)  # the process that places a campaign need not be the one producing
    a = _campaign(api, totalStock=300)
    assert (a["partition"], a["weight"]) == (0, 1)  # the topic has one partition
    with api.client(admin=True) as client:
        beyond = client.post("/api/admin/campaigns", json={"name": "x", "totalStock": 1, "partition": 1})
        assert (beyond.status_code, beyond.json()["errorCode"]) == (422, "VALIDATION_ERROR")
        assert "1 partitions" in beyond.json()["message"]
    with database.begin() as conn:  # campaigns from before placement: no partition stored
        legacy, untouched = (
            conn.execute(
                campaign.insert().values(name=name, total_stock=10_000, current_stock=10_000, created_at=utcnow())
            ).inserted_primary_key[0]  # type: ignore[index]
            for name in ("legacy", "untouched")
        )
    worker = processes.worker(settings, WORKER_BATCH_SIZE="50")  # decides while the topic grows

    users = [u if u % 5 else u // 5 + 1 for u in range(1, 1501)]  # every fifth click is someone's second
    answers: list[int] = []
    before = threading.Thread(target=_post_all, args=(api, a["id"], users[:600], answers))
    before.start()
    _post_all(api, legacy, list(range(1, 101)), answers)
    before.join()
    assert campaign_row(database, legacy).kafka_partition == 0  # pinned by the API when it first read it
    assert campaign_row(database, untouched).kafka_partition is None
    wait_until(lambda: decided_count(database, a["id"]) >= 300, 60, "decisions under way")

    during = threading.Thread(target=_post_all, args=(api, a["id"], users[600:], answers))
    during.start()
    grown = _provision(settings, "--partitions", "3")  # while campaign A is being decided
    during.join()
    assert grown.returncode == 0, grown.stderr
    assert "grown from 1 to 3 partitions" in grown.stderr
    assert re.search(r"pinned \d+ campaign\(s\) to their key's partition of 1", grown.stderr)  # untouched among them
    assert campaign_row(database, untouched).kafka_partition == key_partition(str(untouched).encode(), 1) == 0

    b, c = _campaign(api, totalStock=50), _campaign(api, totalStock=50, weight=3)
    assert (b["partition"], c["partition"]) == (1, 2)  # the new, empty partitions
    wait_until(lambda: campaign_row(database, a["id"]).current_stock == 0, 60, "A to sell out")
    d = _campaign(api, totalStock=50)  # p0: the two legacy ones (A sold out: no load), p1: b, p2: c weighing 3
    assert d["partition"] == 1
    _post_all(api, b["id"], list(range(1, 81)), answers)
    _post_all(api, c["id"], list(range(1, 81)), answers)
    _post_all(api, legacy, list(range(101, 201)), answers)  # pinned: still where its key went
    assert set(answers) == {202}, Counter(answers)  # no 503 while a process learns of the new partitions

    # A request for A written to another partition by a tool is not decided: its order is partition 0's.
    producer = Producer(producer_config(settings))
    stray = signed(settings, a["id"], 999_999)
    producer.produce(settings.kafka_topic, stray.to_json(), stray.key(), 2)
    assert producer.flush(10) == 0

    expected = {a["id"]: 1500, legacy: 200, b["id"]: 80, c["id"]: 80}
    wait_until(
        lambda: all(decided_count(database, cid) == n for cid, n in expected.items()), 120, "every request decided"
    )
    assert assert_decided_as_the_log_says(settings, database, a["id"], 300, partition=0) == 1500
    assert assert_decided_as_the_log_says(settings, database, legacy, 10_000) == 200
    assert assert_decided_as_the_log_says(settings, database, b["id"], 50) == 80
    assert assert_decided_as_the_log_says(settings, database, c["id"], 50) == 80
    with database.connect() as conn:
        placed = dict(
            conn.execute(
                select(
                    participation_history.c.campaign_id,
                    func.group_concat(participation_history.c.kafka_partition.distinct()),
                )
                .where(participation_history.c.campaign_id.in_(expected))
                .group_by(participation_history.c.campaign_id)
            ).all()
        )
        held = conn.scalars(
            select(worker_heartbeat.c.partitions).where(
                worker_heartbeat.c.consumer_group == settings.kafka_consumer_group
            )
        ).all()
    assert placed == {a["id"]: "0", legacy: "0", b["id"]: str(b["partition"]), c["id"]: str(c["partition"])}
    assert "0,1,2" in held  # the running worker was given the new partitions
    letters = [
        m for m in read_topic(settings, settings.dlq_topic) if orjson.loads(m.value())["requestId"] == stray.request_id
    ]
    assert [dict(m.headers())["dlq.code"] for m in letters] == [b"WRONG_PARTITION"]

    with api.client(admin=True) as client:
        kafka = client.get("/api/admin/kafka").json()["data"]
    live = {p["partition"]: (p["liveCampaigns"], p["liveWeight"]) for p in kafka["partitions"]}
    # p0: legacy and untouched (A sold out, weight 1 each), and the other live campaigns this database holds
    # there (earlier tests', the fuzzer's with any weight), counted here from their rows
    with database.connect() as conn:
        others, others_weight = conn.execute(
            select(func.count(), func.coalesce(func.sum(campaign.c.weight), 0)).where(
                campaign.c.mode == "KAFKA",
                campaign.c.kafka_partition == 0,
                campaign.c.current_stock > 0,
                or_(campaign.c.ends_at.is_(None), campaign.c.ends_at > utcnow()),
                campaign.c.id.not_in([legacy, untouched]),
            )
        ).one()
    assert live[0] == (2 + others, 2 + int(others_weight))
    assert (live[1], live[2]) == ((1, 1), (0, 0))  # d (b sold out); c sold out
    assert worker.popen.poll() is None

    shrink = _provision(settings, "--partitions", "2")
    assert shrink.returncode != 0 and "refused" in shrink.stderr and "3 partitions" in shrink.stderr
