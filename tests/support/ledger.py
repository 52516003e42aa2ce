"""Queries on the real database that tests assert with: history rows and counts, counters against history, decisions
against the Kafka log."""

from __future__ import annotations

from typing import Any

import orjson
from sqlalchemy import Engine, func, select

from fcfs.kafka import read_topic
from fcfs.schema import Outcome, campaign, participation_history
from fcfs.settings import Settings


def history_counts(engine: Engine, campaign_id: int) -> dict[str, int]:
    with engine.connect() as conn:
        rows = conn.execute(
            select(participation_history.c.status, func.count())
            .where(participation_history.c.campaign_id == campaign_id)
            .group_by(participation_history.c.status)
        ).all()
    counts = {o.value: 0 for o in Outcome if o is not Outcome.RELEASED}  # (RELEASED only when there are some)
    counts.update({status.value: n for status, n in rows})
    return counts


def decided_count(engine: Engine, campaign_id: int) -> int:
    """The campaign's history rows: its requests decided so far."""
    with engine.connect() as conn:
        return int(conn.scalar(select(func.count()).where(participation_history.c.campaign_id == campaign_id)) or 0)


def history_rows(engine: Engine, campaign_id: int) -> list[Any]:
    with engine.connect() as conn:
        return list(
            conn.execute(
                select(participation_history)
                .where(participation_history.c.campaign_id == campaign_id)
                .order_by(participation_history.c.kafka_partition, participation_history.c.kafka_offset)
            ).all()
        )


def campaign_row(engine: Engine, campaign_id: int) -> Any:
    with engine.connect() as conn:
        return conn.execute(select(campaign).where(campaign.c.id == campaign_id)).one()


def assert_counters_match_history(engine: Engine, campaign_id: int) -> dict[str, int]:
    """I1 and the O(1) counters: the campaign row agrees with the history table."""
    counts = history_counts(engine, campaign_id)
    row = campaign_row(engine, campaign_id)
    assert row.success_count == counts["SUCCESS"]
    assert row.fail_count == counts["FAIL"]
    assert row.duplicate_count == counts["DUPLICATE"]
    assert row.released_count == counts.get("RELEASED", 0)
    assert row.current_stock == row.total_stock - counts["SUCCESS"] >= 0
    return counts


def assert_decided_as_the_log_says(
    settings: Settings, engine: Engine, campaign_id: int, stock: int, partition: int | None = None
) -> int:
    """Walk the topic in Kafka's order and check every request's row: the first `stock` distinct users
    SUCCESS, a user's later requests DUPLICATE, the others FAIL, each at its own partition and offset, none
    missing and none extra. With `partition`, the campaign's placement: only that partition's requests
    (others are dead-lettered). Returns the number of requests checked."""
    rows = {r.request_id: r for r in history_rows(engine, campaign_id)}
    seen: set[int] = set()
    winners = checked = 0
    for message in read_topic(settings):
        event = orjson.loads(message.value() or b"{}")
        if event.get("campaignId") != campaign_id or partition not in (None, message.partition()):
            continue
        user = event["userId"]
        if user in seen:
            expected = "DUPLICATE"
        elif winners < stock:
            expected, winners = "SUCCESS", winners + 1
        else:
            expected = "FAIL"
        seen.add(user)
        row = rows.pop(event["requestId"], None)
        assert row is not None, f"request {event['requestId']} at offset {message.offset()} was not decided"
        assert (row.status.value, row.user_id, row.kafka_partition, row.kafka_offset) == (
            expected,
            user,
            message.partition(),
            message.offset(),
        ), row
        checked += 1
    assert not rows, f"{len(rows)} rows for requests that are not in the log"
    return checked
