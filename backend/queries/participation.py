"""A participation request as its look-up reads it: its decision once the worker has recorded one, its place
among the campaign's decided requests, and — while it waits — how far the worker is from it in the log."""

from __future__ import annotations

import datetime as dt
from typing import Any, NamedTuple

from sqlalchemy import Engine, Integer, and_, cast, func, or_, select

from fcfs.db import utcnow
from fcfs.schema import Outcome, claim, consumer_lag_sample, consumer_offset, participation_history

h = participation_history.c
RATE_WINDOW = dt.timedelta(seconds=10)  # the decision rate of a partition, from its lag samples this far back


def decision(engine: Engine, *, request_id: str) -> Any:
    """The decided request (status, user_id, where it was in the log, when and in which row it was decided, and
    its win's claim if its campaign's winners must claim), None while it is not decided."""
    c = claim.c
    with engine.connect() as conn:
        return conn.execute(
            select(
                h.id,
                h.status,
                h.user_id,
                h.kafka_partition,
                h.kafka_offset,
                h.decided_at,
                h.promoted_at,
                c.deadline,
                c.claimed_at,
                c.released_at,
                c.promoted.label("claim_promoted"),
            )
            .select_from(participation_history.outerjoin(claim, c.history_id == h.id))
            .where(h.request_id == request_id)
        ).first()


def place_among(engine: Engine, *, campaign_id: int, decided: Any) -> tuple[int, int]:
    """(its place among the campaign's decided requests in decision order, from 1; the winners decided before
    it): one count over the campaign's rows before it, in the order the index `(campaign_id, decided_at)` keeps."""
    before = or_(h.decided_at < decided.decided_at, and_(h.decided_at == decided.decided_at, h.id < decided.id))
    with engine.connect() as conn:
        ahead, winners = conn.execute(
            select(func.count(), func.coalesce(func.sum(cast(h.status == Outcome.SUCCESS, Integer)), 0)).where(
                h.campaign_id == campaign_id, before
            )
        ).one()
    return int(ahead) + 1, int(winners)


class LinePosition(NamedTuple):
    ahead: int  # messages of the partition before the request that the worker has not decided yet
    per_second: float | None  # the partition's decisions per second lately (None: no samples)


def line_position(engine: Engine, *, group: str, topic: str, partition: int, offset: int) -> LinePosition:
    """How far the worker group is from `offset` in `partition`: its stored next offset (written in the same
    transaction as the decisions, so exact) and how fast it has been moving (from the lag samples the API
    takes once a second)."""
    since = utcnow() - RATE_WINDOW
    with engine.connect() as conn:
        next_offset = conn.scalar(
            select(consumer_offset.c.next_offset).where(
                consumer_offset.c.consumer_group == group,
                consumer_offset.c.topic == topic,
                consumer_offset.c.partition_id == partition,
            )
        )
        samples = conn.execute(
            select(consumer_lag_sample.c.sampled_at, consumer_lag_sample.c.committed_offset)
            .where(
                consumer_lag_sample.c.topic == topic,
                consumer_lag_sample.c.partition_id == partition,
                consumer_lag_sample.c.sampled_at >= since,
            )
            .order_by(consumer_lag_sample.c.sampled_at)
        ).all()
    rate = None
    if len(samples) >= 2:
        (t0, c0), (t1, c1) = samples[0], samples[-1]
        seconds = (t1 - t0).total_seconds()
        rate = max(c1 - c0, 0) / seconds if seconds > 0 else None
    return LinePosition(max(offset - int(next_offset or 0), 0), rate)
