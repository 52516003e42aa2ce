"""Faults the system must survive, on the real stack: worker crashes, a database outage, a broker restart."""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import os
import random
import re
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from typing import Any

import psutil
import pytest
from confluent_kafka import Consumer, TopicPartition
from sqlalchemy import Engine, select

from fcfs.db import make_engine
from fcfs.kafka import admin_client, ensure_topics, reader_config
from fcfs.provision import ensure_database, migrate
from fcfs.schema import consumer_offset
from fcfs.settings import Settings
from tests.support import ROOT, free_ports, wait_until
from tests.support.ledger import (
    assert_counters_match_history,
    assert_decided_as_the_log_says,
    decided_count,
    history_rows,
)
from tests.support.processes import Api, Processes
from tests.support.stack import stack_broker, stack_cluster, stack_database


def _committed(settings: Settings) -> int:
    consumer = Consumer(reader_config(settings, settings.kafka_consumer_group))
    try:
        return int(consumer.committed([TopicPartition(settings.kafka_topic, 0)], timeout=10)[0].offset)
    finally:
        consumer.close()


def _stored_offset(engine: Engine, settings: Settings) -> int:
    """The next offset of partition 0 the database has recorded for the workers' group."""
    with engine.connect() as conn:
        stored = conn.scalar(
            select(consumer_offset.c.next_offset).where(
                consumer_offset.c.consumer_group == settings.kafka_consumer_group,
                consumer_offset.c.topic == settings.kafka_topic,
                consumer_offset.c.partition_id == 0,
            )
        )
    assert stored is not None, "no offset stored for the group"
    return int(stored)


RETRY_LINE = re.compile(r"^(\S+ \S+) WARNING worker batch not recorded, retrying in ([0-9.]+) s", re.M)


def _retries(log: str) -> list[tuple[dt.datetime, float]]:
    """The worker's retries: when each was logged and the backoff it announced."""
    return [
        (dt.datetime.strptime(at, "%Y-%m-%d %H:%M:%S,%f"), float(backoff)) for at, backoff in RETRY_LINE.findall(log)
    ]


def _bulk(api: Api, campaign_id: int, start: int, count: int) -> None:
    with api.client(admin=True) as client:
        r = client.post(
            "/api/admin/test/participate-bulk", json={"campaignId": campaign_id, "count": count, "userIdStart": start}
        )
        assert r.status_code == 202, r.text


def test_ten_kills_during_a_hundred_thousand_messages(
    settings: Settings, database: Engine, processes: Processes
) -> None:
    """Ten SIGKILLs of the worker, each at a random count of decisions past its restart, with work always left:
    the requests are published in eleven pieces, one more before each restart, so however fast the worker
    is, the piece in hand is unfinished when the kill comes."""
    api = processes.api(settings)
    campaign_id = api.create_campaign(total_stock=30_000)
    # 80,000 users; after each 20,000 new ones, 5,000 of them click again, so winners (users 1..30,000)
    # click again as well as losers, all through the run: 100,000 requests in log order, cut into pieces
    bulks = [bulk for first in (1, 20_001, 40_001, 60_001) for bulk in ((first, 20_000), (first, 5_000))]
    pieces = list(_pieces(bulks, [9_000] * 10 + [10_000]))
    rng = random.Random(2024)
    worker_env = {"WORKER_BATCH_SIZE": "300", "WORKER_INSTANCE_ID": "fault-test-worker"}  # static membership
    published, kills_at = 0, []
    for piece in pieces[:10]:
        for start, count in piece:
            _bulk(api, campaign_id, start, count)
            published += count
        before = decided_count(database, campaign_id)
        at = before + rng.randrange(300, 4_000)  # a random count within a batch or between two; < published
        worker = processes.worker(settings, **worker_env)
        wait_until(lambda a=at: decided_count(database, campaign_id) >= a, 60, "the worker to decide", 0.005)
        worker.kill()
        kills_at.append(decided_count(database, campaign_id))
        assert before < kills_at[-1] < published, (before, kills_at, published)  # progress, and work left
        assert_counters_match_history(database, campaign_id)  # never half a batch
    for start, count in pieces[10]:
        _bulk(api, campaign_id, start, count)
        published += count
    assert published == 100_000

    assert processes.worker(settings, "--drain", **worker_env).wait(300) == 0
    rows = history_rows(database, campaign_id)
    assert len(rows) == 100_000  # nothing lost
    assert len({r.request_id for r in rows}) == 100_000  # nothing twice
    counts = assert_counters_match_history(database, campaign_id)  # stock never below zero: CHECK constraints
    assert counts == {"SUCCESS": 30_000, "FAIL": 50_000, "DUPLICATE": 20_000}
    assert assert_decided_as_the_log_says(settings, database, campaign_id, 30_000) == 100_000
    print(f"decided rows at each kill: {kills_at}")


def _pieces(bulks: list[tuple[int, int]], sizes: list[int]) -> Iterator[list[tuple[int, int]]]:
    """The bulks (first user, count), in order, cut into pieces of the given sizes (bulks split where needed)."""
    queue = list(bulks)
    for size in sizes:
        piece: list[tuple[int, int]] = []
        while size:
            first, count = queue.pop(0)
            take = min(size, count)
            piece.append((first, take))
            if take < count:
                queue.insert(0, (first + take, count - take))
            size -= take
        yield piece
    assert not queue, queue


def test_database_outage_during_consumption(settings: Settings, processes: Processes) -> None:
    with stack_database("mariadb-outage-test", free_ports(1)) as (server, start_db, stop_db):
        url = server + "fcfs_outage"
        ensure_database(url)
        migrate(url)
        settings = settings.model_copy(update={"database_url": url})
        engine = make_engine(url, pool_size=2)
        try:
            api = processes.api(settings)
            campaign_id = api.create_campaign(total_stock=5_000)
            sync_campaign = api.create_campaign(total_stock=1, mode="SYNC")
            _bulk(api, campaign_id, 1, 10_000)
            worker = processes.worker(settings, WORKER_BATCH_SIZE="500", WORKER_RETRY_MAX_BACKOFF_S="1")
            wait_until(lambda: decided_count(engine, campaign_id) >= 3000, 60, "the worker to get going")
            # the rest held back until the worker is held still: however fast it is, there is work in hand
            # when the database goes
            os.kill(worker.popen.pid, signal.SIGSTOP)
            try:
                _bulk(api, campaign_id, 10_001, 20_000)
                stop_db()
            finally:
                os.kill(worker.popen.pid, signal.SIGCONT)
            outage_started, outage_from = time.monotonic(), time.time()
            with api.client() as client:
                sync = client.post(f"/api/campaigns/{sync_campaign}/participation-sync", json={"userId": 999_999})
                status = client.get(f"/api/campaigns/{campaign_id}/status")
                queued = client.post(f"/api/campaigns/{campaign_id}/participation", json={"userId": 888_888})
            assert (sync.status_code, sync.json()["errorCode"]) == (503, "DATABASE_UNAVAILABLE")
            assert (status.status_code, status.json()["errorCode"]) == (503, "DATABASE_UNAVAILABLE")
            assert queued.status_code == 202  # the Kafka path does not need the database
            committed_early = _committed(settings)
            assert 3000 <= committed_early <= 10_000  # a real offset, inside what was published before the outage
            time.sleep(max(0.0, 10 - (time.monotonic() - outage_started)))
            assert _committed(settings) == committed_early  # no offsets move while nothing can be decided
            assert worker.popen.poll() is None, "the worker died during the outage"
            os.kill(worker.popen.pid, signal.SIGSTOP)  # the database back, the worker held still to look
            try:
                start_db()
                outage_to = time.time()
                # I4's order: Kafka's commit follows the database's. Reversed, the batch in hand when the
                # database went down would be committed in Kafka and missing from the database.
                assert _stored_offset(engine, settings) == committed_early == decided_count(engine, campaign_id)
            finally:
                os.kill(worker.popen.pid, signal.SIGCONT)

            wait_until(
                lambda: decided_count(engine, campaign_id) == 30_001,
                120,
                "the worker to resume by itself",
                interval_s=0.5,
            )
            assert worker.terminate(30) == 0
            # the API saw the outage (its intake flush and the status read failed): marked once the database is back
            with api.client() as client:
                marked = wait_until(
                    lambda: client.get(f"/api/campaigns/{campaign_id}/timeline").json()["data"]["databaseUnavailable"],
                    10,
                    "the outage's seconds to be written",
                )
            assert len(marked) >= 8 and marked == sorted(set(marked)), marked  # ~10 s of outage
            assert int(outage_from) <= marked[0] and marked[-1] <= int(outage_to) + 1, (outage_from, marked, outage_to)
            retries = _retries(worker.log())
            assert len(retries) >= 5, retries  # 10 s of outage
            stated = [backoff for _, backoff in retries]
            assert stated[:5] == [0.1, 0.2, 0.4, 0.8, 1.0] and set(stated[5:]) <= {1.0}  # doubling, capped
            for (at, backoff), (next_at, _) in itertools.pairwise(retries):
                assert backoff - 0.01 <= (next_at - at).total_seconds() <= backoff + 3, retries  # it waits, then tries
            counts = assert_counters_match_history(engine, campaign_id)
            assert counts == {"SUCCESS": 5_000, "FAIL": 25_001, "DUPLICATE": 0}
            with api.client() as client:
                assert client.get(f"/api/campaigns/{campaign_id}/status").status_code == 200
                again = client.post(f"/api/campaigns/{sync_campaign}/participation-sync", json={"userId": 999_999})
                assert again.status_code == 200 and again.json()["data"]["status"] == "SUCCESS"
        finally:
            engine.dispose()


async def _ingest(
    api: Api, campaign_id: int, clients: int, until: Callable[[], bool], results: list[tuple[float, float, Any]]
) -> list[tuple[float, float, Any]]:
    """`clients` loops posting participations until `until()` says enough (at most 5 minutes); (start,
    elapsed, response) of each request appended to `results` as it is answered."""
    cap = time.monotonic() + 300
    async with api.async_client() as http:

        async def loop(n: int) -> None:
            user = n * 1_000_000
            while not until() and time.monotonic() < cap:
                user += 1
                t0 = time.monotonic()
                r = await http.post(f"/api/campaigns/{campaign_id}/participation", json={"userId": user})
                results.append((t0, time.monotonic() - t0, r))

        await asyncio.gather(*(loop(n) for n in range(1, clients + 1)))
    return results


def _accepted_since(results: list[tuple[float, float, Any]], since: float | None) -> float | None:
    """When the first request sent after `since` was answered 202 (None: none yet)."""
    if since is None:
        return None
    return min((t + elapsed for t, elapsed, r in results if t >= since and r.status_code == 202), default=None)


def test_broker_restart_during_ingest(settings: Settings, database: Engine, processes: Processes) -> None:
    """Traffic before, during and after an 8 s broker outage, running on until 3 s after the first 202
    after the restart, however long the stop and the restart take."""
    with stack_broker("kafka-restart-test", free_ports(2)) as (bootstrap, start_broker, stop_broker):
        settings = settings.model_copy(update={"kafka_bootstrap_servers": bootstrap, "kafka_produce_timeout_ms": 3000})
        ensure_topics(settings)
        api = processes.api(settings)
        campaign_id = api.create_campaign(total_stock=1_000)
        stopped: list[float] = []
        restarted: list[float] = []
        results: list[tuple[float, float, Any]] = []

        def recovered_a_while() -> bool:
            back = _accepted_since(results, restarted[0] if restarted else None)
            return back is not None and time.monotonic() > back + 3

        async def scenario() -> None:
            ingest = asyncio.create_task(_ingest(api, campaign_id, 40, recovered_a_while, results))
            await asyncio.sleep(5)
            stopped.append(time.monotonic())
            await asyncio.to_thread(stop_broker)
            await asyncio.sleep(8)
            await asyncio.to_thread(start_broker)
            restarted.append(time.monotonic())
            await ingest

        asyncio.run(scenario())
        codes = [r.status_code for _, _, r in results]
        assert set(codes) <= {202, 503}, set(codes)
        assert codes.count(503) > 0 and codes.count(202) > 0
        not_accepted = set()
        for _, _, r in results:
            if r.status_code == 503:  # an honest refusal: what happened, and the id to look up or retry
                body = r.json()
                assert body["errorCode"] == "KAFKA_UNAVAILABLE" and r.headers["retry-after"] == "1"
                assert body["data"]["status"] in ("UNKNOWN", "NOT_ACCEPTED") and body["data"]["requestId"]
                if body["data"]["status"] == "NOT_ACCEPTED":
                    not_accepted.add(body["data"]["requestId"])
        # I5's bound as the door measured its wait for Kafka (its own clock: a starved client or machine adds to
        # what the client sees, not to what the door does), and never a hang as the client sees it
        bound = settings.kafka_produce_timeout_ms / 1000 + 1
        waited = [r.json()["data"]["waitedMs"] / 1000 for _, _, r in results if r.status_code == 503]
        assert max(waited) <= bound + 0.5, sorted(waited)[-5:]
        slowest = max(results, key=lambda result: result[1])
        where = (
            f"sent {slowest[0] - stopped[0]:+.1f} s after the stop ({restarted[0] - stopped[0]:.1f} s to the restart)"
        )
        assert slowest[1] < 3 * bound, (slowest[1], slowest[2].status_code, where)
        assert "past I5's" not in api.proc.log()
        assert _accepted_since(results, restarted[0]) is not None, "no recovery after the restart"
        last = max(t for t, _, _ in results)
        assert any(r.status_code == 202 for t, _, r in results if t > last - 2), "no 202s at the end"
        accepted = {r.json()["data"]["requestId"] for _, _, r in results if r.status_code == 202}

        assert processes.worker(settings, "--drain").wait(180) == 0
        recorded = [r.request_id for r in history_rows(database, campaign_id)]
        assert len(recorded) == len(set(recorded))
        assert accepted <= set(recorded)  # every 202 was decided: no false acceptance
        assert not not_accepted & set(recorded)  # NOT_ACCEPTED: never in the log, never decided
        assert_counters_match_history(database, campaign_id)
        print(
            f"{len(results)} requests: {codes.count(202)} accepted, {codes.count(503)} refused during the outage "
            f"({len(not_accepted)} NOT_ACCEPTED); {len(set(recorded) - accepted)} refused ones reached Kafka "
            "anyway and were decided"
        )


def test_losing_a_broker_of_a_three_broker_cluster_loses_nothing(
    settings: Settings, database: Engine, processes: Processes
) -> None:
    with stack_cluster("kafka-cluster-test", free_ports(6)) as (bootstrap, kill_broker, _start_broker):
        settings = settings.model_copy(
            update={
                "kafka_bootstrap_servers": bootstrap,
                "kafka_replication_factor": 3,
                "kafka_min_insync_replicas": 2,
            }
        )
        ensure_topics(settings)
        leader = admin_client(settings).list_topics(timeout=10).topics[settings.kafka_topic].partitions[0].leader
        leader_pid = int((ROOT / ".stack" / f"kafka-cluster-test-{leader}" / "pid").read_text())
        api = processes.api(settings)
        campaign_id = api.create_campaign(total_stock=2_000)
        worker = processes.worker(settings, WORKER_BATCH_SIZE="500")

        killed: list[float] = []

        async def scenario() -> list[tuple[float, float, Any]]:  # ingest goes on for 10 s after the kill
            ingest = asyncio.create_task(
                _ingest(api, campaign_id, 40, lambda: bool(killed) and time.monotonic() > killed[0] + 10, [])
            )
            await asyncio.sleep(5)
            await asyncio.to_thread(kill_broker, leader)  # the partition's leader dies mid-ingest
            killed_at = time.monotonic()
            killed.append(killed_at)
            results = await ingest
            assert any(t > killed_at + 2 and r.status_code == 202 for t, _, r in results), "ingest did not go on"
            return results

        results = asyncio.run(scenario())
        assert {r.status_code for _, _, r in results} <= {202, 503}
        assert not psutil.pid_exists(leader_pid) or psutil.Process(leader_pid).status() == psutil.STATUS_ZOMBIE
        with pytest.raises(subprocess.CalledProcessError):  # the stack script refuses to kill a dead node
            kill_broker(leader)
        new_leader = admin_client(settings).list_topics(timeout=10).topics[settings.kafka_topic].partitions[0].leader
        assert new_leader not in (leader, -1), new_leader  # another broker leads the partition now
        accepted = {r.json()["data"]["requestId"] for _, _, r in results if r.status_code == 202}
        refused = sum(r.status_code != 202 for _, _, r in results)

        def every_accepted_request_decided() -> bool:
            # not a count: a request refused with 503 may still reach Kafka (written, but acknowledged too late)
            return accepted <= {r.request_id for r in history_rows(database, campaign_id)}

        wait_until(
            every_accepted_request_decided,
            120,
            "the worker to decide every accepted request after the broker loss (nothing acknowledged lost)",
            interval_s=0.5,
        )
        assert worker.popen.poll() is None
        recorded = [r.request_id for r in history_rows(database, campaign_id)]
        assert len(recorded) == len(set(recorded))
        assert_counters_match_history(database, campaign_id)
        print(
            f"cluster: leader {leader} killed; {len(accepted)} accepted, {refused} refused "
            f"({len(set(recorded) - accepted)} of them reached Kafka anyway); all accepted decided"
        )
