"""Where a campaign's requests go: one partition, chosen when the campaign is created, for its whole life.

A campaign's order is its partition's order, so every request of a campaign must go to the same
partition (I2). Hashing the key (murmur2 of the campaign id, Kafka's default) does that but places
campaigns blindly: with 10 campaigns on 4 partitions half of the requests landed on one partition.
Here a new campaign goes to the partition with the least expected load (the weights of the live
campaigns already placed there), and the API produces to that partition explicitly.

Growing the topic is safe because no placement depends on the partition count: campaigns keep their
partitions, new ones balance onto the new partitions. Campaigns from before placement existed (NULL)
go by key; they are pinned to their key's partition before the topic grows, so they never move.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

from sqlalchemy import Connection, Engine, or_, select, text, update

from fcfs.db import utcnow
from fcfs.schema import campaign

log = logging.getLogger(__name__)

_M = 0x5BD1E995
_MASK = 0xFFFFFFFF


def murmur2(data: bytes) -> int:
    """Kafka's murmur2 (the Java client's `Utils.murmur2`, librdkafka's `murmur2` partitioners), as a signed
    32-bit integer."""
    length = len(data)
    h = (0x9747B28C ^ length) & _MASK
    whole = length - length % 4
    for i in range(0, whole, 4):
        k = int.from_bytes(data[i : i + 4], "little")
        k = (k * _M) & _MASK
        k ^= k >> 24
        k = (k * _M) & _MASK
        h = ((h * _M) & _MASK) ^ k
    tail = length % 4
    if tail == 3:
        h ^= data[whole + 2] << 16
    if tail >= 2:
        h ^= data[whole + 1] << 8
    if tail >= 1:
        h ^= data[whole]
        h = (h * _M) & _MASK
    h ^= h >> 13
    h = (h * _M) & _MASK
    h ^= h >> 15
    return h - (1 << 32) if h & 0x80000000 else h


def key_partition(key: bytes, partitions: int) -> int:
    """The partition Kafka's default partitioner gives a key: positive murmur2 modulo the count."""
    return (murmur2(key) & 0x7FFFFFFF) % partitions


@dataclass(frozen=True)
class PartitionLoad:
    partition: int
    campaigns: int  # live campaigns placed here
    weight: int  # their summed weight: the expected share of traffic placement balances


def live_load(conn: Connection, partitions: int) -> list[PartitionLoad]:
    """Per partition 0..partitions-1, the live campaigns placed there (not ended, not sold out) and their weight.

    Campaigns going by key count on their key's partition."""
    now = utcnow()
    c = campaign.c
    rows = conn.execute(
        select(c.id, c.kafka_partition, c.weight).where(
            c.mode == "KAFKA", c.current_stock > 0, or_(c.ends_at.is_(None), c.ends_at > now)
        )
    ).all()
    weight = [0] * partitions
    count = [0] * partitions
    for row in rows:
        p = row.kafka_partition if row.kafka_partition is not None else key_partition(str(row.id).encode(), partitions)
        if p < partitions:
            weight[p] += row.weight
            count[p] += 1
    return [PartitionLoad(p, count[p], weight[p]) for p in range(partitions)]


def choose_partition(loads: Sequence[PartitionLoad]) -> int:
    """The least loaded partition: least weight, then fewest campaigns, then the lowest number."""
    return min(loads, key=lambda load: (load.weight, load.campaigns, load.partition)).partition


def pin_unplaced(engine: Engine, partitions: int) -> int:
    """Give every campaign still going by key the partition its key has now (so growth cannot move it).
    Returns how many were pinned."""
    c = campaign.c
    with engine.begin() as conn:
        unplaced = select(c.id).where(c.kafka_partition.is_(None), c.mode == "KAFKA").with_for_update()
        ids = [row.id for row in conn.execute(unplaced)]
        for campaign_id in ids:
            place = key_partition(str(campaign_id).encode(), partitions)
            conn.execute(update(campaign).where(c.id == campaign_id).values(kafka_partition=place))
    if ids:
        log.info("pinned %d campaign(s) to their key's partition of %d", len(ids), partitions)
    return len(ids)


PLACEMENT_LOCK = "fcfs:placement"


@contextmanager
def placement_lock(conn: Connection, timeout_s: int = 10) -> Iterator[None]:
    """One placement at a time across every API process (two at once would both pick the same partition).
    Take it outside the transaction that inserts the campaign, so it is released after the commit."""
    got = conn.scalar(text("SELECT GET_LOCK(:name, :timeout)"), {"name": PLACEMENT_LOCK, "timeout": timeout_s})
    conn.commit()  # a named lock is the session's, not the transaction's: the caller's transaction starts after
    if got != 1:
        raise TimeoutError("another campaign is being placed")
    try:
        yield
    finally:
        conn.rollback()  # whatever the caller left open
        conn.execute(text("SELECT RELEASE_LOCK(:name)"), {"name": PLACEMENT_LOCK})
        conn.commit()
