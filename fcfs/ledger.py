"""The participation ledger: decide requests against a locked campaign and record them with the counters.

Shared by the worker (a batch from Kafka) and the API's synchronous path (one request)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sqlalchemy import Connection, func, select, update
from sqlalchemy.dialects.mysql import insert as mysql_insert

from fcfs.db import utcnow
from fcfs.decision import Tally, decide_batch
from fcfs.events import ParticipationEvent
from fcfs.schema import Channel, Outcome, campaign, campaign_second, participation_history


@dataclass(frozen=True, slots=True)
class Delivered:
    """A valid event with its place in the log."""

    event: ParticipationEvent
    partition: int
    offset: int
    raw: bytes = b""
    key: bytes | None = None


@dataclass(slots=True)
class BatchResult:
    decided: int = 0
    redelivered: int = 0
    successes: int = 0
    fails: int = 0
    duplicates: int = 0


def lock_campaigns(conn: Connection, campaign_ids: Iterable[int]) -> dict[int, int]:
    """Lock the campaigns' rows (in id order, so workers never deadlock) and return their stock."""
    ids = sorted(set(campaign_ids))
    if not ids:
        return {}
    rows = conn.execute(
        select(campaign.c.id, campaign.c.current_stock)
        .where(campaign.c.id.in_(ids))
        .order_by(campaign.c.id)
        .with_for_update()
    )
    return {row.id: row.current_stock for row in rows}


def prior_participants(conn: Connection, campaign_id: int, user_ids: Iterable[int]) -> set[int]:
    """The users among these who already took part in the campaign (their first attempt is recorded)."""
    users = sorted(set(user_ids))
    if not users:
        return set()
    rows = conn.execute(
        select(participation_history.c.participant_user_id).where(
            participation_history.c.campaign_id == campaign_id,
            participation_history.c.participant_user_id.in_(users),
        )
    )
    return {row.participant_user_id for row in rows}


INSERT_HISTORY = (
    "INSERT INTO participation_history (request_id, campaign_id, user_id, status, channel, kafka_partition, "
    "kafka_offset, requested_at, decided_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)"
)
_EPOCH = dt.datetime(1970, 1, 1)


def _ms_to_datetime(ms: int) -> str:
    return (_EPOCH + dt.timedelta(milliseconds=ms)).strftime("%Y-%m-%d %H:%M:%S.%f")


def record_decisions(
    conn: Connection,
    campaign_id: int,
    stock: int,
    events: Sequence[Delivered],
    channel: Channel,
    now: dt.datetime | None = None,
) -> tuple[list[Outcome], BatchResult]:
    """Decide `events` (one campaign, log order, campaign row locked), insert history, update counters."""
    now = now or utcnow()
    prior = prior_participants(conn, campaign_id, (d.event.user_id for d in events))
    tally = decide_batch(stock, prior, (d.event.user_id for d in events))
    kafka = channel is Channel.KAFKA
    decided = now.strftime("%Y-%m-%d %H:%M:%S.%f")
    # Plain %s placeholders and tuples: PyMySQL folds them into one multi-row INSERT.
    conn.exec_driver_sql(
        INSERT_HISTORY,
        [
            (
                d.event.request_id,
                campaign_id,
                d.event.user_id,
                outcome.value,
                channel.value,
                d.partition if kafka else None,
                d.offset if kafka else None,
                _ms_to_datetime(d.event.requested_at_ms),
                decided,
            )
            for d, outcome in zip(events, tally.outcomes, strict=True)
        ],
    )
    values: dict[str, object] = {
        "current_stock": tally.stock_left,
        "success_count": campaign.c.success_count + tally.successes,
        "fail_count": campaign.c.fail_count + tally.fails,
        "duplicate_count": campaign.c.duplicate_count + tally.duplicates,
    }
    if stock > 0 and tally.stock_left == 0:
        values["sold_out_at"] = now
    conn.execute(update(campaign).where(campaign.c.id == campaign_id).values(**values))
    record_second(conn, campaign_id, now, tally)
    result = BatchResult(len(events), 0, tally.successes, tally.fails, tally.duplicates)
    return tally.outcomes, result


def record_second(conn: Connection, campaign_id: int, now: dt.datetime, tally: Tally) -> None:
    """Add a batch's decisions to the campaign's per-second counts (the dashboard's curves)."""
    stmt = mysql_insert(campaign_second).values(
        campaign_id=campaign_id,
        second=now.replace(microsecond=0),
        success_count=tally.successes,
        fail_count=tally.fails,
        duplicate_count=tally.duplicates,
        stock_after=tally.stock_left,
    )
    conn.execute(
        stmt.on_duplicate_key_update(
            success_count=campaign_second.c.success_count + stmt.inserted.success_count,
            fail_count=campaign_second.c.fail_count + stmt.inserted.fail_count,
            duplicate_count=campaign_second.c.duplicate_count + stmt.inserted.duplicate_count,
            stock_after=func.least(campaign_second.c.stock_after, stmt.inserted.stock_after),
        )
    )
