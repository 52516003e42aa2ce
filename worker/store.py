"""The worker's unit of work: one batch of the log, decided and recorded in one database transaction.

`record_batch` is the whole unit: lock the batch's campaigns, dead-letter requests for campaigns that
do not exist, skip requests already recorded (redeliveries), decide the rest in log order, insert
the history rows, update the counters and store the next offsets — all or nothing.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from sqlalchemy import Connection, Engine, select

from fcfs import draw
from fcfs.db import placeholders, utcnow
from fcfs.dead_letters import Code, DeadLetter
from fcfs.ledger import BatchResult, Delivered, Locked, lock_campaigns, record_decisions
from fcfs.schema import Channel, consumer_offset

log = logging.getLogger(__name__)


@dataclass(slots=True)
class Batch:
    """What one poll of the topic gave: valid events and undecidable messages, in log order."""

    topic: str
    delivered: list[Delivered] = field(default_factory=list)
    invalid: list[DeadLetter] = field(default_factory=list)
    next_offsets: dict[int, int] = field(default_factory=dict)  # partition -> offset after the batch


@dataclass(slots=True)
class Recorded:
    """What a committed batch decided, and which of its messages went to the dead-letter topic."""

    result: BatchResult
    dead_letters: list[DeadLetter]


def record_batch(
    engine: Engine,
    group: str,
    batch: Batch,
    first_unrecorded: dict[int, int] | None,
    dead_letter: Callable[[Sequence[DeadLetter]], None],
) -> Recorded:
    """Decide and record a batch in one transaction; `dead_letter` must have Kafka's acknowledgement
    of the undecidable messages before it returns, so the transaction commits only after it.

    `first_unrecorded` maps a partition to the first offset no committed batch covered (None: look up
    every request id); see `_decide_new`.
    """
    with engine.begin() as conn:
        locked = lock_campaigns(conn, (d.event.campaign_id for d in batch.delivered))
        stocks = {cid: row.stock for cid, row in locked.items() if row.mode == Channel.KAFKA.value}
        known, dead = [], list(batch.invalid)
        for d in batch.delivered:
            why = _undecidable(d, locked) if d.event.campaign_id not in stocks else _misplaced(d, locked)
            if why is None:
                known.append(d)
            else:
                dead.append(DeadLetter(*why, batch.topic, d.partition, d.offset, d.key, d.raw))
        result = _decide_new(conn, known, locked, first_unrecorded)
        _save_offsets(conn, group, batch.topic, batch.next_offsets)
        if dead:
            dead_letter(dead)
    return Recorded(result, dead)


def _misplaced(d: Delivered, locked: dict[int, Locked]) -> tuple[Code, str] | None:
    """Why a request on another partition than its campaign's is dead-lettered: its campaign's order is
    that partition's, which it is not part of (I2)."""
    placed = locked[d.event.campaign_id].partition
    if placed is None or placed == d.partition:
        return None
    return Code.WRONG_PARTITION, f"campaign {d.event.campaign_id} is placed on partition {placed}, not {d.partition}"


def _undecidable(d: Delivered, locked: dict[int, Locked]) -> tuple[Code, str]:
    """Why a request for a campaign the worker does not decide is dead-lettered."""
    campaign_id = d.event.campaign_id
    if campaign_id not in locked:
        return Code.UNKNOWN_CAMPAIGN, f"unknown campaign {campaign_id}"
    return Code.WRONG_CHANNEL, f"campaign {campaign_id} takes part synchronously (SYNC mode), not through Kafka"


def _already_recorded(conn: Connection, request_ids: Sequence[str]) -> set[str]:
    """The request ids among these that already have a history row or are held in a pre-queue (redelivered)."""
    if not request_ids:
        return set()
    marks = placeholders(len(request_ids))
    rows = conn.exec_driver_sql(
        f"SELECT request_id FROM participation_history WHERE request_id IN ({marks}) "
        f"UNION ALL SELECT request_id FROM pre_queue WHERE request_id IN ({marks})",
        tuple(request_ids) * 2,
    )
    return {request_id for (request_id,) in rows}


def _decide_new(
    conn: Connection,
    delivered: Sequence[Delivered],
    locked: dict[int, Locked],
    first_unrecorded: dict[int, int] | None = None,
) -> BatchResult:
    """Decide and record every new event of a batch; `locked` are their campaigns' locked rows. The requests of a
    campaign whose pre-queue is not drawn yet are held until the first one stamped at or after its start: the
    pre-queue is drawn then, and the rest decided after it (fcfs/draw.py).

    `first_unrecorded` maps a partition to the first offset no committed batch covered: events at or
    past it are only looked up if their request id repeats within the batch; the unique request id
    still guards them (a conflict makes the caller retry with `first_unrecorded=None`, checking all).
    """
    if first_unrecorded is None:
        maybe_seen = [d.event.request_id for d in delivered]
    else:
        maybe_seen = [d.event.request_id for d in delivered if d.offset < first_unrecorded.get(d.partition, 2**63)]
    seen = _already_recorded(conn, maybe_seen)
    by_campaign: dict[int, list[Delivered]] = defaultdict(list)
    fresh_ids: set[str] = set()
    total = BatchResult()
    for d in delivered:
        rid = d.event.request_id
        if rid in seen or rid in fresh_ids:  # redelivered, or published twice (e.g. a DLQ replay)
            total.redelivered += 1
            continue
        fresh_ids.add(rid)
        by_campaign[d.event.campaign_id].append(d)
    now = utcnow()
    for campaign_id in sorted(by_campaign):
        row, events = locked[campaign_id], by_campaign[campaign_id]
        stock = row.stock
        if row.opens_ms is not None:  # a pre-queue not drawn: hold up to the first request after the opening
            opening = next((i for i, d in enumerate(events) if d.event.requested_at_ms >= row.opens_ms), len(events))
            draw.hold(conn, campaign_id, [(d.event, d.partition, d.offset) for d in events[:opening]], now)
            total.held += opening
            events = events[opening:]
            if not events:
                continue
            stock = draw_now(conn, campaign_id, row, now).stock_left
        _, result = record_decisions(conn, campaign_id, stock, events, Channel.KAFKA, now, row.claim_seconds)
        total.add(result)
    return total


def draw_now(conn: Connection, campaign_id: int, row: Locked, now: dt.datetime) -> draw.Drawn:
    """Decide the campaign's pre-queue (its row `row` locked, not drawn yet)."""
    drawn = draw.draw(
        conn,
        campaign_id,
        stock=row.stock,
        order=row.pre_queue_order,
        seed=row.draw_seed,
        claim_seconds=row.claim_seconds,
        now=now,
    )
    log.info(
        "campaign %d: pre-queue of %d drawn (%s), %d winners",
        campaign_id,
        drawn.held,
        row.pre_queue_order,
        drawn.winners,
    )
    return drawn


def draw_due(engine: Engine, campaign_id: int) -> draw.Drawn | None:
    """Draw the campaign's pre-queue now if it is still not drawn (the worker's timer: no request came after the
    opening); None if it was drawn meanwhile."""
    with engine.begin() as conn:
        row = lock_campaigns(conn, (campaign_id,)).get(campaign_id)
        if row is None or row.opens_ms is None:
            return None
        return draw_now(conn, campaign_id, row, utcnow())


SAVE_OFFSETS = (
    "INSERT INTO consumer_offset (consumer_group, topic, partition_id, next_offset, updated_at) "
    "VALUES (%s, %s, %s, %s, %s) ON DUPLICATE KEY UPDATE "
    "next_offset = GREATEST(next_offset, VALUES(next_offset)), updated_at = VALUES(updated_at)"
)


def _save_offsets(conn: Connection, group: str, topic: str, next_offsets: dict[int, int]) -> None:
    """Store the next offset to read per partition, in the same transaction as the decisions."""
    if not next_offsets:
        return
    now = utcnow()
    conn.exec_driver_sql(SAVE_OFFSETS, [(group, topic, p, o, now) for p, o in sorted(next_offsets.items())])


def load_offsets(conn: Connection, group: str, topic: str) -> dict[int, int]:
    rows = conn.execute(
        select(consumer_offset.c.partition_id, consumer_offset.c.next_offset).where(
            consumer_offset.c.consumer_group == group, consumer_offset.c.topic == topic
        )
    )
    return {row.partition_id: row.next_offset for row in rows}
