"""A fair opening, against the real stack (API, worker, Kafka, MariaDB): requests of the pre-queue are accepted and
held, not decided, until the opening; then decided in the campaign's order — a draw by the seed committed at
creation (recomputed by `python -m fcfs.draw verify` from the published files, which catch a wrong seed or a queue
changed afterwards), or log order — and every later request after them in log order, a late one for the pre-queue
included. Held requests survive a worker killed with SIGKILL; a worker restarted holds none twice."""

from __future__ import annotations

import datetime as dt
import json
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
from confluent_kafka import Producer
from sqlalchemy import Engine, text

from fcfs.draw import Entry, draw_order, queue_digest, winners_of
from fcfs.kafka import producer_config
from fcfs.schema import PreQueueOrder
from fcfs.settings import Settings
from tests.support import ROOT, signed, wait_until
from tests.support.ledger import assert_counters_match_history, campaign_row, history_rows
from tests.support.processes import Api, Processes

OPENS_IN_S = 8  # the pre-queue is open this long before the opening: time to send every request in it


def _opening(seconds: float) -> tuple[dt.datetime, str]:
    at = dt.datetime.now(dt.UTC).replace(microsecond=0) + dt.timedelta(seconds=seconds)
    return at, at.isoformat().replace("+00:00", "Z")


def _draw(api: Api, campaign_id: int) -> dict[str, Any]:
    with api.client(admin=True) as admin:
        r = admin.get(f"/api/admin/campaigns/{campaign_id}/draw")
    assert r.status_code == 200, r.text
    return dict(r.json()["data"])


def _verify(tmp: Path, draw_state: dict[str, Any], pre_queue: str, winners: str) -> subprocess.CompletedProcess[str]:
    (tmp / "draw.json").write_text(json.dumps({"data": draw_state}))
    (tmp / "pre-queue.csv").write_text(pre_queue)
    (tmp / "winners.csv").write_text(winners)
    command = [sys.executable, "-m", "fcfs.draw", "verify", "--draw", str(tmp / "draw.json")]
    command += ["--pre-queue", str(tmp / "pre-queue.csv"), "--winners", str(tmp / "winners.csv")]
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=60, check=False)


def _held(engine: Engine, campaign_id: int) -> list[Any]:
    with engine.connect() as conn:
        return list(
            conn.execute(
                text("SELECT * FROM pre_queue WHERE campaign_id = :c ORDER BY kafka_offset"), {"c": campaign_id}
            ).all()
        )


def test_a_drawn_pre_queue_is_decided_as_the_committed_seed_says_and_anyone_can_recompute_it(
    settings: Settings, database: Engine, processes: Processes, tmp_path: Path
) -> None:
    """Stock 3, a DRAW pre-queue of users 1–10 (user 3 twice): all 202 and held (PENDING, preQueued) — none decided
    before the opening, whatever the worker reads; a worker killed with SIGKILL meanwhile loses none and its
    successor holds none twice. With nobody after the opening the worker draws after the grace: the winners are
    the first three of the order that the seed (its SHA-256 published at creation, itself revealed now) gives,
    their places 1–3; a unit added goes to the fourth of that order; the verify command agrees, and refuses a
    wrong seed or a changed queue. A request stamped
    before the opening that reaches the log after the draw (a slow API process) is decided after it, in log
    order."""
    api = processes.api(settings)
    opens_at, opens_text = _opening(OPENS_IN_S)
    campaign_id = api.create_campaign(total_stock=3, startsAt=opens_text, preQueueSeconds=3600, preQueueOrder="DRAW")
    created = _draw(api, campaign_id)
    assert created["preQueueOrder"] == "DRAW" and created["drawSeed"] is None and created["drawnAt"] is None
    assert len(created["drawCommitment"]) == 64 and api.status(campaign_id)["status"] == "PRE_QUEUE"
    _, later_text = _opening(7200)
    not_yet = api.create_campaign(total_stock=1, startsAt=later_text, preQueueSeconds=60)
    r = httpx.post(f"{api.base_url}/api/campaigns/{not_yet}/participation", json={"userId": 1}, timeout=30)
    assert r.status_code == 409 and r.json()["errorCode"] == "CAMPAIGN_NOT_STARTED", r.text

    worker = processes.worker(settings)
    tickets = {user: api.take_part(campaign_id, user) for user in range(1, 11)}
    again = api.take_part(campaign_id, 3)
    assert all(t["preQueued"] is True for t in [*tickets.values(), again])
    wait_until(lambda: campaign_row(database, campaign_id).pre_queued_count == 11, 30, "the pre-queue held")
    worker.kill()
    worker = processes.worker(settings)
    pending = api.look_up(campaign_id, tickets[1])
    assert pending["status"] == "PENDING" and pending["preQueued"] is True, pending
    assert history_rows(database, campaign_id) == [] and len(_held(database, campaign_id)) == 11

    # nobody after the opening: drawn PRE_QUEUE_GRACE_S after it, once the worker has read the partition to its end
    assert time.time() < opens_at.timestamp(), "the pre-queue took longer than the test allows"
    drawn_won = api.look_up(campaign_id, tickets[1], wait_s=OPENS_IN_S + 20)
    assert drawn_won["status"] in ("SUCCESS", "FAIL"), drawn_won
    state = wait_until(lambda: (s := _draw(api, campaign_id))["drawnAt"] and s, 10, "the draw published")
    assert state["drawSeed"] is not None and state["preQueuedCount"] == 11 and state["drawWinners"] == 3
    assert time.time() >= opens_at.timestamp() + settings.pre_queue_grace_s - 1  # not before the opening

    held = _held(database, campaign_id)
    entries = [Entry(h.request_id, h.user_id, h.kafka_partition, h.kafka_offset) for h in held]
    assert queue_digest(entries) == state["preQueueDigest"]
    order = draw_order(PreQueueOrder.DRAW, entries, state["drawSeed"], state["preQueueDigest"])
    expected = [e.user_id for e in winners_of(order, 3)]
    rows = history_rows(database, campaign_id)
    assert sorted(r.user_id for r in rows if r.status.value == "SUCCESS") == sorted(expected)
    assert [r.status.value for r in rows].count("DUPLICATE") == 1 and len(rows) == 11
    by_id = sorted(rows, key=lambda r: r.id)  # written in the draw's order
    assert [r.request_id for r in by_id] == [e.request_id for e in order]
    for place, user in enumerate(expected, start=1):
        answer = api.look_up(campaign_id, tickets[user], wait_s=10)
        assert (answer["status"], answer["place"], answer["winnersBefore"]) == ("SUCCESS", place, place - 1), answer
    fresh = processes.api(settings)  # a process that never followed it: from the database, the same places
    assert fresh.look_up(campaign_id, tickets[expected[2]])["place"] == 3

    # a request stamped before the opening, in the log after the draw: decided after it, in log order (FAIL: sold out)
    partition = campaign_row(database, campaign_id).kafka_partition
    late = signed(settings, campaign_id, 99, int(opens_at.timestamp() * 1000) - 500)
    producer = Producer(producer_config(settings))
    producer.produce(settings.kafka_topic, late.to_json(), late.key(), partition=partition)
    assert producer.flush(10) == 0
    after = api.take_part(campaign_id, 11)
    assert api.look_up(campaign_id, after, wait_s=30)["status"] == "FAIL"
    rows = history_rows(database, campaign_id)
    assert [(r.user_id, r.status.value) for r in rows[-2:]] == [(99, "FAIL"), (11, "FAIL")]
    assert min(r.id for r in rows[-2:]) > max(r.id for r in by_id) and len(_held(database, campaign_id)) == 11
    counts = assert_counters_match_history(database, campaign_id)
    assert counts == {"SUCCESS": 3, "FAIL": 9, "DUPLICATE": 1}
    with api.client(admin=True) as admin:  # a unit added goes to the earliest FAIL in the draw's order, not the log's
        added = admin.post(f"/api/admin/campaigns/{campaign_id}/stock", json={"add": 1})
    assert added.status_code == 200 and added.json()["data"]["promoted"] == 1, added.text
    fourth = winners_of(order, 4)[3]
    promoted = [r for r in history_rows(database, campaign_id) if r.promoted_at is not None]
    assert [r.request_id for r in promoted] == [fourth.request_id]
    assert assert_counters_match_history(database, campaign_id) == {"SUCCESS": 4, "FAIL": 8, "DUPLICATE": 1}

    with api.client(admin=True) as admin:
        pre_queue = admin.get(f"/api/admin/campaigns/{campaign_id}/pre-queue.csv").text
        winners = admin.get(f"/api/admin/campaigns/{campaign_id}/winners.csv").text
    checked = _verify(tmp_path, state, pre_queue, winners)
    assert checked.returncode == 0 and "the draw checks out" in checked.stdout, checked.stdout + checked.stderr
    assert "WRONG" not in checked.stdout and "1 promoted later" in checked.stdout, checked.stdout
    wrong_seed = {**state, "drawSeed": "00" * 32}
    refused = _verify(tmp_path, wrong_seed, pre_queue, winners)
    assert refused.returncode == 1 and "WRONG" in refused.stdout, refused.stdout
    lines = pre_queue.splitlines()
    changed = "\n".join([lines[0], *lines[2:]]) + "\n"  # one request taken out of the queue afterwards
    refused = _verify(tmp_path, state, changed, winners)
    assert refused.returncode == 1 and "digest" in refused.stdout, refused.stdout
    assert _draw(api, not_yet)["drawSeed"] is None  # (another campaign's seed stays secret)


def test_a_fifo_pre_queue_is_decided_in_log_order_at_the_first_request_after_the_opening(
    settings: Settings, database: Engine, processes: Processes
) -> None:
    """Stock 2, a FIFO pre-queue of users 5, 4, 3, 2, 1 and 4 again, in that log order: at the first request after
    the opening (user 9) the worker decides the pre-queue in log order — 5 and 4 win, 3, 2, 1 FAIL, 4's repeat
    DUPLICATE — and user 9 after them. The switch log records the draw, and the campaign leaves PRE_QUEUE."""
    api = processes.api(settings)
    opens_at, opens_text = _opening(OPENS_IN_S)
    campaign_id = api.create_campaign(total_stock=2, startsAt=opens_text, preQueueSeconds=600)
    assert api.status(campaign_id)["status"] == "PRE_QUEUE" and _draw(api, campaign_id)["drawCommitment"] is None
    processes.worker(settings, PRE_QUEUE_GRACE_S="300")  # only the request after the opening draws
    tickets = [api.take_part(campaign_id, user) for user in (5, 4, 3, 2, 1, 4)]
    wait_until(lambda: campaign_row(database, campaign_id).pre_queued_count == 6, 30, "the pre-queue held")
    assert history_rows(database, campaign_id) == []
    wait_until(lambda: time.time() >= opens_at.timestamp(), OPENS_IN_S + 5, "the opening")
    nine = api.take_part(campaign_id, 9)
    assert "preQueued" not in nine
    assert api.look_up(campaign_id, nine, wait_s=30)["status"] == "FAIL"
    rows = history_rows(database, campaign_id)
    assert [(r.user_id, r.status.value) for r in rows] == [
        (5, "SUCCESS"),
        (4, "SUCCESS"),
        (3, "FAIL"),
        (2, "FAIL"),
        (1, "FAIL"),
        (4, "DUPLICATE"),
        (9, "FAIL"),
    ]
    places = [api.look_up(campaign_id, t, wait_s=10)["place"] for t in tickets]
    assert places == [1, 2, 3, 4, 5, 6]
    state = _draw(api, campaign_id)
    assert state["drawnAt"] is not None and state["drawWinners"] == 2 and state["drawSeed"] is None
    assert api.status(campaign_id)["status"] == "SOLD_OUT"
    with api.client(admin=True) as admin:
        switches = admin.get(f"/api/admin/campaigns/{campaign_id}/switches").json()["data"]
    assert [s["action"] for s in switches] == ["DRAW"] and switches[0]["actor"] == "worker"
    assert assert_counters_match_history(database, campaign_id) == {"SUCCESS": 2, "FAIL": 4, "DUPLICATE": 1}


def test_a_pre_queue_is_refused_where_it_cannot_be_kept(settings: Settings, processes: Processes) -> None:
    """Without startsAt, in SYNC mode, past a week, or with an unknown order: 422, nothing created."""
    api = processes.api(settings)
    _, opens_text = _opening(3600)
    bad: list[dict[str, Any]] = [
        {"preQueueSeconds": 60},
        {"preQueueSeconds": 60, "startsAt": opens_text, "mode": "SYNC"},
        {"preQueueSeconds": 8 * 24 * 3600, "startsAt": opens_text},
        {"preQueueSeconds": -1, "startsAt": opens_text},
        {"preQueueSeconds": "60", "startsAt": opens_text},
        {"preQueueSeconds": 60, "startsAt": opens_text, "preQueueOrder": "RANDOM"},
        {"preQueueSeconds": 60, "startsAt": "1970-01-02T00:00:30Z"},
    ]
    with api.client(admin=True) as admin:
        before = len(admin.get("/api/admin/campaigns").json()["data"])
        for fields in bad:
            r = admin.post("/api/admin/campaigns", json={"name": "x", "totalStock": 1, **fields})
            assert r.status_code in (400, 422), (fields, r.text)
        assert len(admin.get("/api/admin/campaigns").json()["data"]) == before


def _database_reads(api: Api) -> float:
    text_ = httpx.get(f"{api.base_url}/metrics", timeout=10).text
    found = re.search(r"^fcfs_lookup_database_reads_total (\S+)$", text_, re.M)
    return float(found[1]) if found else 0.0


def test_a_big_drawn_pre_queue_is_learned_by_the_feed_page_by_page_in_the_draws_order(
    settings: Settings, database: Engine, processes: Processes
) -> None:
    """12,000 simulated users in a DRAW pre-queue (the bulk loader), stock 100: after the draw every API process
    learns the block in pages of the draw's order — each request's place is its rank in the draw across the
    pages' edges, answered from the feed (no database read) — and the winners are the draw's first 100."""
    api = processes.api(settings)
    opens_at, opens_text = _opening(OPENS_IN_S + 4)
    campaign_id = api.create_campaign(total_stock=100, startsAt=opens_text, preQueueSeconds=600, preQueueOrder="DRAW")
    processes.worker(settings)
    with api.client(admin=True) as admin:
        body = {"campaignId": campaign_id, "count": 12_000, "userIdStart": 1}
        assert admin.post("/api/admin/test/participate-bulk", json=body).status_code == 202
    wait_until(lambda: campaign_row(database, campaign_id).pre_queued_count == 12_000, 60, "the pre-queue held")
    assert time.time() < opens_at.timestamp(), "the pre-queue took longer than the test allows"
    state = wait_until(lambda: (s := _draw(api, campaign_id))["drawnAt"] and s, OPENS_IN_S + 30, "the draw")
    rows = sorted(history_rows(database, campaign_id), key=lambda r: r.id)  # the draw's order
    assert len(rows) == 12_000 and [r.status.value for r in rows[:101]] == ["SUCCESS"] * 100 + ["FAIL"]

    def answer(rank: int) -> dict[str, Any]:
        r = rows[rank - 1]
        ticket = {"requestId": r.request_id, "partition": r.kafka_partition, "offset": r.kafka_offset}
        return api.look_up(campaign_id, ticket, wait_s=10)

    assert answer(1)["place"] == 1  # the feed follows the campaign from now on
    wait_until(lambda: answer(12_000)["place"] == 12_000, 30, "the feed through the whole block")
    before = _database_reads(api)
    ranks = [2, 100, 101, 4_999, 5_000, 5_001, 5_002, 9_999, 10_000, 10_001, 11_999]
    answers = [answer(rank) for rank in ranks]
    assert [a["place"] for a in answers] == ranks
    assert [a["winnersBefore"] for a in answers] == [min(rank - 1, 100) for rank in ranks]
    assert _database_reads(api) == before  # every one from the feed
    assert state["drawWinners"] == 100


def test_a_pre_queue_on_a_busy_partition_is_drawn_once_the_worker_reads_past_the_grace_not_at_its_end(
    settings: Settings, database: Engine, processes: Processes
) -> None:
    """Campaign A's pre-queue (2 users) shares its partition with campaign B, which gets a backlog of 60,000
    requests stamped after A's opening and its grace, and no request of A comes after the opening: the worker
    draws A as soon as it has read past the grace — a request of B stamped later — not once the partition's
    end is reached (it would wait for B's whole backlog)."""
    api = processes.api(settings)
    opens_at, opens_text = _opening(OPENS_IN_S)
    a = api.create_campaign(total_stock=1, startsAt=opens_text, preQueueSeconds=600, partition=0)
    b = api.create_campaign(total_stock=10, partition=0)
    tickets = [api.take_part(a, user) for user in (1, 2)]
    assert all(t["preQueued"] for t in tickets)
    grace = 1.0
    wait_until(lambda: time.time() >= opens_at.timestamp() + grace + 0.5, OPENS_IN_S + 5, "past the grace")
    with api.client(admin=True) as admin:
        body = {"campaignId": b, "count": 60_000, "userIdStart": 1}
        assert admin.post("/api/admin/test/participate-bulk", json=body).status_code == 202
    processes.worker(settings, PRE_QUEUE_GRACE_S=str(grace))
    drawn_at = wait_until(lambda: campaign_row(database, a).drawn_at, 60, "A's draw")
    with database.connect() as conn:
        before = conn.execute(
            text("SELECT COUNT(*) FROM participation_history WHERE campaign_id = :b AND decided_at <= :at"),
            {"b": b, "at": drawn_at},
        ).scalar_one()
    assert before < 30_000, before  # drawn early in B's backlog
    assert [(r.user_id, r.status.value) for r in history_rows(database, a)] == [(1, "SUCCESS"), (2, "FAIL")]
    wait_until(lambda: campaign_row(database, b).success_count == 10, 60, "B's backlog decided")
