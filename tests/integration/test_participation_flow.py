"""The Kafka path end to end: real API, real broker, real worker, real database (I1-I5)."""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from typing import Any, NamedTuple

import aiohttp
import orjson
from sqlalchemy import Engine

from fcfs.kafka import read_topic
from fcfs.settings import Settings
from tests.support import signed
from tests.support.ledger import assert_counters_match_history, assert_decided_as_the_log_says, history_rows
from tests.support.processes import Processes


class Answered(NamedTuple):
    status_code: int
    body: Any

    def json(self) -> Any:
        return self.body


async def _participate(base_url: str, campaign_id: int, users: list[int]) -> list[Answered]:
    """Every user's click at once. (aiohttp: each request leaves in one write, headers and body together, as a
    browser's small POST does; a client too starved to send a body within BODY_TIMEOUT_S of its headers is
    answered 408 by the door, rightly.)"""
    async with aiohttp.ClientSession(base_url, connector=aiohttp.TCPConnector(limit=len(users))) as session:

        async def one(user: int) -> Answered:
            async with session.post(f"/api/campaigns/{campaign_id}/participation", json={"userId": user}) as r:
                return Answered(r.status, await r.json())

        return list(await asyncio.gather(*(one(u) for u in users)))


def test_thousand_concurrent_requests_pick_exactly_the_first_fifty_distinct_users(
    settings: Settings, database: Engine, processes: Processes
) -> None:
    api = processes.api(settings)
    campaign_id = api.create_campaign(total_stock=50, name="AirPods for the first 50")
    rng = random.Random(7)
    users = [rng.randint(1, 300) for _ in range(1000)]  # a few hundred people, many clicking twice or more

    responses = asyncio.run(_participate(api.base_url, campaign_id, users))

    statuses = Counter(r.status_code for r in responses)  # (counted: a list diff of 1,000 items takes minutes)
    assert statuses == {202: 1000}, statuses
    accepted = {r.json()["data"]["requestId"]: r.json()["data"]["userId"] for r in responses}
    assert len(accepted) == 1000
    assert all(r.json()["data"]["status"] == "PENDING" for r in responses)

    worker = processes.worker(settings, "--drain")
    assert worker.wait(120) == 0, worker.log()

    # Kafka's log order is the order of arrival: the expected winners follow from it alone.
    log_order = [orjson.loads(m.value()) for m in read_topic(settings)]
    assert sorted(e["requestId"] for e in log_order) == sorted(accepted)
    expected_winners: list[int] = []
    for event in log_order:
        if event["userId"] not in expected_winners and len(expected_winners) < 50:
            expected_winners.append(event["userId"])

    rows = history_rows(database, campaign_id)
    assert len(rows) == 1000  # every 202 ended in exactly one terminal record
    assert {r.request_id for r in rows} == set(accepted)
    winners = [r.user_id for r in rows if r.status.value == "SUCCESS"]
    assert winners == expected_winners  # I2: exactly the first 50 distinct users, in log order
    assert len(set(winners)) == 50  # I3
    # row by row in the order the test read from Kafka (not the offsets the worker stored): every other
    # request is FAIL (first try, stock gone) or DUPLICATE (tried before), each at its own offset
    assert assert_decided_as_the_log_says(settings, database, campaign_id, 50) == 1000

    counts = assert_counters_match_history(database, campaign_id)
    status = api.status(campaign_id)
    assert status["currentStock"] == 0
    assert status["successCount"] == counts["SUCCESS"] == 50
    assert status["failCount"] == counts["FAIL"] == len(set(users)) - 50
    assert status["duplicateCount"] == counts["DUPLICATE"] == 1000 - len(set(users))
    assert status["totalParticipation"] == 1000
    assert status["stockUsageRate"] == "100.00%"
    assert status["status"] == "SOLD_OUT"

    # each 202's ticket is the place in the log the worker recorded for it
    tickets = {
        r.json()["data"]["requestId"]: (r.json()["data"]["partition"], r.json()["data"]["offset"]) for r in responses
    }
    assert tickets == {r.request_id: (r.kafka_partition, r.kafka_offset) for r in rows}

    # every requestId answered 202 now reports its terminal outcome, its place and the winners before it
    in_order = sorted(rows, key=lambda r: (r.decided_at, r.id))
    place = {r.request_id: n for n, r in enumerate(in_order, start=1)}
    winners_before = {}
    for r in in_order:
        winners_before[r.request_id] = sum(
            1 for w in in_order[: place[r.request_id] - 1] if w.status.value == "SUCCESS"
        )
    by_request = {r.request_id: r.status.value for r in rows}
    with api.client() as client:
        for request_id in accepted:
            data = client.get(f"/api/campaigns/{campaign_id}/participation/{request_id}").json()["data"]
            assert data["status"] == by_request[request_id]
            assert data["userId"] == accepted[request_id]
            assert (data["place"], data["winnersBefore"]) == (place[request_id], winners_before[request_id])
            assert (data["partition"], data["offset"]) == tickets[request_id]


def test_a_waiting_request_knows_how_many_are_ahead_of_it(
    settings: Settings, database: Engine, processes: Processes
) -> None:
    """Before the worker runs, the ticket says how far the worker is from each request: `ahead` is exactly its
    offset (nothing of the fresh topic decided yet); after, `ahead` is gone and the place is given."""
    api = processes.api(settings)
    campaign_id = api.create_campaign(total_stock=3)
    with api.client() as client:
        tickets = [
            client.post(f"/api/campaigns/{campaign_id}/participation", json={"userId": u}).json()["data"]
            for u in range(1, 11)
        ]
        offsets = [t["offset"] for t in tickets]
        assert offsets == sorted(offsets) and len(set(offsets)) == 10  # one after the other, in order
        for t in tickets:
            url = f"/api/campaigns/{campaign_id}/participation/{t['requestId']}"
            waiting = client.get(url, params={"partition": t["partition"], "offset": t["offset"]}).json()["data"]
            assert waiting["status"] == "PENDING" and waiting["ahead"] == t["offset"], waiting
            assert "ahead" not in client.get(url, params={"offset": t["offset"]}).json()["data"]  # no partition
        refused = client.get(f"/api/campaigns/{campaign_id}/participation/{tickets[0]['requestId']}?offset=-1")
        assert (refused.status_code, refused.json()["errorCode"]) == (422, "VALIDATION_ERROR")

        assert processes.worker(settings, "--drain").wait(120) == 0
        for n, t in enumerate(tickets):
            url = f"/api/campaigns/{campaign_id}/participation/{t['requestId']}"
            decided = client.get(url, params={"partition": t["partition"], "offset": t["offset"]}).json()["data"]
            assert decided["status"] == ("SUCCESS" if n < 3 else "FAIL") and "ahead" not in decided
            assert (decided["place"], decided["winnersBefore"]) == (n + 1, min(n, 3))
            assert client.get(url).json()["data"] == decided  # again: the same answer (kept by the process)


def test_redelivered_messages_change_nothing(settings: Settings, database: Engine, processes: Processes) -> None:
    api = processes.api(settings)
    campaign_id = api.create_campaign(total_stock=3)
    with api.client() as client:
        for user in (1, 2, 2, 3, 4):
            assert client.post(f"/api/campaigns/{campaign_id}/participation", json={"userId": user}).status_code == 202
    assert processes.worker(settings, "--drain").wait(60) == 0
    before = assert_counters_match_history(database, campaign_id)
    rows = history_rows(database, campaign_id)

    # The same messages again with only the request ids to guard: a new consumer group starts from the
    # beginning of the log and has no stored offsets (the other guard, stored offsets with Kafka's
    # rewound, is test_worker_behaviour's poison test).
    again = settings.model_copy(update={"kafka_consumer_group": settings.kafka_consumer_group + "-again"})
    worker = processes.worker(again, "--drain")
    assert worker.wait(60) == 0
    assert "redelivered=5" in worker.log()
    assert assert_counters_match_history(database, campaign_id) == before == {"SUCCESS": 3, "FAIL": 1, "DUPLICATE": 1}
    assert history_rows(database, campaign_id) == rows  # every row as it was: ids, outcomes, offsets, times


def test_a_request_published_twice_is_decided_once(settings: Settings, database: Engine, processes: Processes) -> None:
    """A request id seen again at a new offset (a replay, a second publication) is recognised and skipped."""
    from confluent_kafka import Producer

    from fcfs.kafka import producer_config

    api = processes.api(settings)
    campaign_id = api.create_campaign(total_stock=5)
    producer = Producer(producer_config(settings))
    first, second = signed(settings, campaign_id, 1), signed(settings, campaign_id, 2, 1_700_000_000_001)
    producer.produce(settings.kafka_topic, first.to_json(), first.key())
    assert producer.flush(10) == 0
    assert processes.worker(settings, "--drain").wait(60) == 0

    for event in (first, second):
        producer.produce(settings.kafka_topic, event.to_json(), event.key())
    assert producer.flush(10) == 0
    worker = processes.worker(settings, "--drain")  # same group: starts past the first batch
    assert worker.wait(60) == 0
    assert "checking every id" in worker.log() and "redelivered=1" in worker.log()
    rows = history_rows(database, campaign_id)
    assert [(r.request_id, r.status.value) for r in rows] == [
        (first.request_id, "SUCCESS"),
        (second.request_id, "SUCCESS"),
    ]
    assert assert_counters_match_history(database, campaign_id)["SUCCESS"] == 2


def test_any_request_id_text_is_stored_as_is(database: Engine) -> None:
    """Request ids are written into the multi-row INSERT by hand: quotes, %, backslashes and non-ASCII survive.

    The worker only records ids the API signed (plain text), so this calls the ledger directly, on the
    real database, with every other kind of text the escaping must still get right."""
    from sqlalchemy import insert

    from fcfs.db import utcnow
    from fcfs.events import ParticipationEvent
    from fcfs.ledger import Delivered, record_decisions
    from fcfs.schema import Channel, campaign

    odd = ["it's", "100%s %(x)s %%", "back\\slash\\", 'quote"; DROP TABLE campaign; --', "día-ü-🎧", "plain-id.1"]
    with database.begin() as conn:
        created = conn.execute(
            insert(campaign).values(name="odd ids", total_stock=2, current_stock=2, created_at=utcnow())
        )
        campaign_id = int(created.lastrowid)
        events = [
            Delivered(ParticipationEvent(rid, campaign_id, i + 1, 1_700_000_000_000 + i), 0, i)
            for i, rid in enumerate(odd)
        ]
        record_decisions(conn, campaign_id, 2, events, Channel.KAFKA)
    rows = history_rows(database, campaign_id)
    assert [r.request_id for r in rows] == odd
    assert [r.status.value for r in rows] == ["SUCCESS", "SUCCESS"] + ["FAIL"] * 4
    assert [r.requested_at.microsecond for r in rows] == [i * 1000 for i in range(len(odd))]
