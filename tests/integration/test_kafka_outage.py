"""I5: with Kafka down the API answers 503 in bounded time and accepts nothing; it recovers by itself."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from typing import Any

import orjson
from sqlalchemy import Engine, insert

from fcfs.db import utcnow
from fcfs.kafka import ensure_topics, read_topic
from fcfs.schema import campaign
from fcfs.settings import Settings
from tests.support import ROOT, free_ports, wait_until
from tests.support.ledger import history_rows
from tests.support.processes import Api, Processes
from tests.support.stack import stack_broker


async def _burst(api: Api, campaign_id: int, users: range) -> list[tuple[float, Any]]:
    async with api.async_client() as client:

        async def one(user: int) -> tuple[float, Any]:
            t0 = time.monotonic()
            r = await client.post(f"/api/campaigns/{campaign_id}/participation", json={"userId": user})
            return time.monotonic() - t0, r

        return await asyncio.gather(*(one(u) for u in users))


def test_kafka_down_means_503_and_no_history_then_recovery(
    settings: Settings, database: Engine, processes: Processes
) -> None:
    with stack_broker("kafka-outage-test", free_ports(2)) as (bootstrap, start_broker, stop_broker):
        settings = settings.model_copy(update={"kafka_bootstrap_servers": bootstrap, "kafka_produce_timeout_ms": 3000})
        ensure_topics(settings)
        api = processes.api(settings)
        campaign_id = api.create_campaign(total_stock=100)
        before = asyncio.run(_burst(api, campaign_id, range(1, 11)))
        assert [r.status_code for _, r in before] == [202] * 10

        # a campaign placed on a partition this API process has not seen yet (the topic grown meanwhile)
        with database.begin() as conn:
            unseen = conn.execute(
                insert(campaign).values(
                    name="placed on a new partition",
                    total_stock=10,
                    current_stock=10,
                    kafka_partition=3,
                    created_at=utcnow(),
                )
            ).inserted_primary_key[0]  # type: ignore[index]

        stop_broker()
        during = asyncio.run(_burst(api, campaign_id, range(100, 130)))
        assert [r.status_code for _, r in during] == [503] * 30
        assert all(r.json()["errorCode"] == "KAFKA_UNAVAILABLE" for _, r in during)
        # I5's bound as documented: answered within the produce timeout + 1 s (the sweep), not a hang — also
        # when the API must first read the topic's metadata from a broker that does not answer
        unseen_during = asyncio.run(_burst(api, unseen, range(130, 135)))
        assert [r.status_code for _, r in unseen_during] == [503] * 5
        bound = settings.kafka_produce_timeout_ms / 1000 + 1
        assert max(elapsed for elapsed, _ in during + unseen_during) < bound, [e for e, _ in during + unseen_during]
        assert "past I5's" not in api.proc.log()
        refused = {r.json()["data"]["requestId"] for _, r in during}
        with api.client() as client:
            ready = client.get("/health/ready")
            assert ready.status_code == 503 and ready.json()["data"]["checks"]["kafka"] == "DOWN"

        start_broker()

        def accepted_again() -> Any:
            with api.client() as client:
                r = client.post(f"/api/campaigns/{campaign_id}/participation", json={"userId": 500})
            return r if r.status_code == 202 else None

        wait_until(accepted_again, 90, "the API to accept requests again", interval_s=1)
        after = asyncio.run(_burst(api, campaign_id, range(200, 210)))
        assert [r.status_code for _, r in after] == [202] * 10

        worker = processes.worker(settings, "--drain")
        assert worker.wait(120) == 0, worker.log()
        rows = history_rows(database, campaign_id)
        recorded = {r.request_id for r in rows}
        assert not recorded & refused  # nothing refused with 503 was ever decided
        assert {r.user_id for r in rows} == set(range(1, 11)) | {500} | set(range(200, 210))

        def intake() -> tuple[int, int]:  # the door's answers as the Live page reads them, from the database
            with api.client() as client:
                seconds = client.get(f"/api/campaigns/{campaign_id}/timeline").json()["data"]["intake"]
            return sum(p["accepted"] for p in seconds), sum(p["unavailable"] for p in seconds)

        wait_until(lambda: intake()[0] == len(rows) == 21, 10, "the intake counts to be written")
        assert intake()[1] >= 30  # every 503 of the outage counted (and the retries before recovery)


def test_an_ambiguous_503_and_its_retry_with_the_same_idempotency_key_are_one_request(
    settings: Settings, database: Engine, processes: Processes
) -> None:
    """I5: a request the broker takes without acknowledging in time is answered 503 UNKNOWN with its
    request id; it may still be decided, and a retry with the same Idempotency-Key is the same request."""
    name = "kafka-idempotency-test"
    with stack_broker(name, free_ports(2)) as (bootstrap, _start, _stop):
        settings = settings.model_copy(update={"kafka_bootstrap_servers": bootstrap, "kafka_produce_timeout_ms": 2000})
        ensure_topics(settings)
        api = processes.api(settings)
        campaign_id = api.create_campaign(total_stock=5)
        url = f"/api/campaigns/{campaign_id}/participation"
        with api.client() as client:

            def post(user: int, key: str) -> Any:
                return client.post(url, json={"userId": user}, headers={"Idempotency-Key": key})

            first, again, other = post(1, "order-1"), post(1, "order-1"), post(1, "order-2")
            assert [r.status_code for r in (first, again, other)] == [202] * 3
            first_id = first.json()["data"]["requestId"]
            assert again.json()["data"]["requestId"] == first_id != other.json()["data"]["requestId"]
            for bad in ("", "with space", "x" * 65, "tab\there"):
                refused = client.post(
                    url, json={"userId": 1}, headers={"Idempotency-Key": bad.encode().decode("latin-1")}
                )
                assert (refused.status_code, refused.json()["errorCode"]) == (422, "VALIDATION_ERROR"), bad
            pending = client.get(f"{url}/{first_id}").json()["data"]
            assert pending["status"] == "PENDING" and "waitingMs" not in pending  # a keyed id carries no time

            # The broker freezes with user 2's request in flight: no acknowledgement within the timeout.
            broker = int((ROOT / ".stack" / name / "pid").read_text())
            os.kill(broker, signal.SIGSTOP)
            try:
                t0 = time.monotonic()
                ambiguous = post(2, "order-3")
                elapsed = time.monotonic() - t0
            finally:
                os.kill(broker, signal.SIGCONT)
            assert ambiguous.status_code == 503 and elapsed < 5.0, ambiguous.text
            body = ambiguous.json()
            assert body["errorCode"] == "KAFKA_UNAVAILABLE" and body["data"]["status"] == "UNKNOWN"
            ambiguous_id = body["data"]["requestId"]

            # Thawed, the broker writes it all the same: the 503 was not a refusal.
            def written() -> bool:
                return any(
                    orjson.loads(m.value() or b"{}").get("requestId") == ambiguous_id for m in read_topic(settings)
                )

            wait_until(written, 60, "the frozen request to reach the log", interval_s=1)
            # The client retries with the same key: the same request id, accepted.
            retry = wait_until(lambda: (r := post(2, "order-3")).status_code == 202 and r, 60, "a 202", interval_s=1)
            assert retry.json()["data"]["requestId"] == ambiguous_id

        worker = processes.worker(settings, "--drain")
        assert worker.wait(120) == 0, worker.log()
        copies = [m for m in read_topic(settings) if orjson.loads(m.value() or b"{}")["requestId"] == ambiguous_id]
        assert len(copies) >= 2  # published by the frozen attempt and by the retry ...
        rows = history_rows(database, campaign_id)
        assert sorted((r.request_id, r.user_id, r.status.value) for r in rows) == sorted(
            [  # ... decided once
                (first_id, 1, "SUCCESS"),
                (other.json()["data"]["requestId"], 1, "DUPLICATE"),
                (ambiguous_id, 2, "SUCCESS"),
            ]
        )
        assert rows[[r.request_id for r in rows].index(ambiguous_id)].kafka_offset == copies[0].offset()
        with api.client() as client:
            assert client.get(f"{url}/{ambiguous_id}").json()["data"]["status"] == "SUCCESS"


def test_a_fatal_producer_error_is_recovered_by_a_new_producer(settings: Settings) -> None:
    """A fatal error (as an idempotent producer reports when its sequence breaks for good) would leave every
    later request 503: the producer is replaced, readiness says DOWN until it is, and requests go on."""
    from confluent_kafka import KafkaError

    from backend.door.producer import AsyncProducer
    from fcfs.kafka import producer_config

    async def scenario() -> None:
        producer = AsyncProducer(producer_config(settings), 5)
        try:
            await producer.send(settings.kafka_topic, b"k", b"before")
            assert producer.reachable()
            producer._on_error(KafkaError(KafkaError._FATAL, "injected fatal error", fatal=True))
            assert producer.fatal_error is not None and not producer.reachable()
            await asyncio.sleep(0.5)  # the delivery thread replaces it on its next round
            assert producer.fatal_error is None and producer.replacements == 1 and producer.reachable()
            await producer.send(settings.kafka_topic, b"k", b"after")
        finally:
            producer.close()

    asyncio.run(scenario())
    assert [m.value() for m in read_topic(settings)] == [b"before", b"after"]
