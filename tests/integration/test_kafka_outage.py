"""I5: with Kafka down the API answers 503 in bounded time and accepts nothing; it recovers by itself."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from sqlalchemy import Engine

from fcfs.kafka import ensure_topics
from fcfs.settings import Settings
from tests.support import Api, Processes, free_ports, history_rows, stack_broker, wait_until


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

        stop_broker()
        during = asyncio.run(_burst(api, campaign_id, range(100, 130)))
        assert [r.status_code for _, r in during] == [503] * 30
        assert all(r.json()["errorCode"] == "KAFKA_UNAVAILABLE" for _, r in during)
        assert max(elapsed for elapsed, _ in during) < 8.0  # bounded: the produce timeout, not a hang
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
