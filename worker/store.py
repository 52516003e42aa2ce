"""The worker's database unit of work: decide and record one batch in one transaction."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from sqlalchemy import Connection, select

from fcfs.db import utcnow
from fcfs.ledger import BatchResult, Delivered, placeholders, record_decisions
from fcfs.schema import Channel, consumer_offset


def already_recorded(conn: Connection, request_ids: Sequence[str]) -> set[str]:
    """The request ids among these that already have a history row (redelivered messages)."""
    if not request_ids:
        return set()
    rows = conn.exec_driver_sql(
        f"SELECT request_id FROM participation_history WHERE request_id IN ({placeholders(len(request_ids))})",
        tuple(request_ids),
    )
    return {request_id for (request_id,) in rows}


def record_batch(
    conn: Connection,
    delivered: Sequence[Delivered],
    stocks: dict[int, int],
    first_unrecorded: dict[int, int] | None = None,
) -> BatchResult:
    """Decide and record every new event of a batch; `stocks` are the locked campaigns' stock levels.

    `first_unrecorded` maps a partition to the first offset no committed batch covered: events at or
    past it are only looked up if their request id repeats within the batch; the unique request id
    still guards them (a conflict makes the caller retry with `first_unrecorded=None`, checking all).
    """
    if first_unrecorded is None:
        maybe_seen = [d.event.request_id for d in delivered]
    else:
        maybe_seen = [d.event.request_id for d in delivered if d.offset < first_unrecorded.get(d.partition, 2**63)]
    seen = already_recorded(conn, maybe_seen)
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
        _, result = record_decisions(
            conn, campaign_id, stocks[campaign_id], by_campaign[campaign_id], Channel.KAFKA, now
        )
        total.decided += result.decided
        total.successes += result.successes
        total.fails += result.fails
        total.duplicates += result.duplicates
    return total


SAVE_OFFSETS = (
    "INSERT INTO consumer_offset (consumer_group, topic, partition_id, next_offset, updated_at) "
    "VALUES (%s, %s, %s, %s, %s) ON DUPLICATE KEY UPDATE "
    "next_offset = GREATEST(next_offset, VALUES(next_offset)), updated_at = VALUES(updated_at)"
)


def save_offsets(conn: Connection, group: str, topic: str, next_offsets: dict[int, int]) -> None:
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
