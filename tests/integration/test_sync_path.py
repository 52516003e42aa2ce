"""The synchronous baseline: one database transaction per request, still exact under contention."""

from __future__ import annotations

import asyncio
import random
from typing import Any

from sqlalchemy import Engine

from fcfs.settings import Settings
from tests.support.ledger import assert_counters_match_history, history_rows
from tests.support.processes import Api, Processes


async def _hammer(api: Api, campaign_id: int, users: list[int]) -> list[Any]:
    async with api.async_client() as client:
        return await asyncio.gather(
            *(client.post(f"/api/campaigns/{campaign_id}/participation-sync", json={"userId": u}) for u in users)
        )


def test_five_hundred_concurrent_sync_requests_make_exactly_twenty_winners(
    settings: Settings, database: Engine, processes: Processes
) -> None:
    api = processes.api(settings)
    campaign_id = api.create_campaign(total_stock=20, mode="SYNC")
    rng = random.Random(11)
    users = [rng.randint(1, 200) for _ in range(500)]

    responses = asyncio.run(_hammer(api, campaign_id, users))

    assert [r.status_code for r in responses] == [200] * 500
    answers = [r.json()["data"] for r in responses]
    assert all(a["method"] == "SYNC" for a in answers)
    winners = [a["userId"] for a in answers if a["status"] == "SUCCESS"]
    assert len(winners) == 20
    assert len(set(winners)) == 20  # no user wins twice
    rows = history_rows(database, campaign_id)
    assert len(rows) == 500
    assert sorted(r.user_id for r in rows if r.status.value == "SUCCESS") == sorted(winners)
    counts = assert_counters_match_history(database, campaign_id)
    assert counts["DUPLICATE"] == 500 - len(set(users))
    assert api.status(campaign_id)["currentStock"] == 0


def test_a_sync_retry_with_the_same_idempotency_key_gets_the_recorded_outcome(
    settings: Settings, database: Engine, processes: Processes
) -> None:
    api = processes.api(settings)
    campaign_id = api.create_campaign(total_stock=1, mode="SYNC")
    url = f"/api/campaigns/{campaign_id}/participation-sync"
    with api.client() as client:
        answers = [
            client.post(url, json={"userId": user}, headers={"Idempotency-Key": key}).json()["data"]
            for user, key in ((1, "a"), (1, "a"), (2, "a"), (1, "b"), (2, "a"))
        ]
        bad = client.post(url, json={"userId": 3}, headers={"Idempotency-Key": "x" * 65})
    assert [(a["userId"], a["status"]) for a in answers] == [
        (1, "SUCCESS"),
        (1, "SUCCESS"),  # the retry: the same request, not a DUPLICATE
        (2, "FAIL"),  # the same key from another user is another request
        (1, "DUPLICATE"),
        (2, "FAIL"),
    ]
    ids = [a["requestId"] for a in answers]
    assert ids[0] == ids[1] and ids[2] == ids[4] and len(set(ids)) == 3
    assert (bad.status_code, bad.json()["errorCode"]) == (422, "VALIDATION_ERROR")
    assert bad.json()["data"]["errors"] == [
        {"field": "Idempotency-Key", "problem": "must be 1 to 64 visible ASCII characters"}
    ]
    assert sorted(r.request_id for r in history_rows(database, campaign_id)) == sorted(set(ids))
    assert_counters_match_history(database, campaign_id)
