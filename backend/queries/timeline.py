"""What the live dashboard draws: per-second decisions of a campaign, throughput, consumer lag over time."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, delete, func, select
from sqlalchemy.dialects.mysql import insert as mysql_insert

from fcfs.epoch import epoch_s
from fcfs.schema import campaign, campaign_second, consumer_lag_sample


def campaign_timeline(
    conn: Connection, campaign_id: int, after: dt.datetime | None, limit: int = 3600
) -> tuple[int, list[dict[str, Any]]]:
    """The newest `limit` per-second points (after `after`, when given), oldest first, with running totals.

    Running totals are counted back from the campaign's counters, read in the same snapshot, so a
    poll costs O(points returned) however long the campaign has been running.
    """
    s = campaign_second.c
    conn = conn.execution_options(isolation_level="REPEATABLE READ")  # one snapshot for totals and points
    with conn.begin():
        totals = conn.execute(
            select(
                campaign.c.total_stock, campaign.c.success_count, campaign.c.fail_count, campaign.c.duplicate_count
            ).where(campaign.c.id == campaign_id)
        ).first()
        if totals is None:
            raise LookupError(campaign_id)
        query = select(campaign_second).where(s.campaign_id == campaign_id).order_by(s.second.desc()).limit(limit)
        if after is not None:
            query = query.where(s.second > after)
        newest_first = conn.execute(query).all()
    running = {
        "success": int(totals.success_count),
        "fail": int(totals.fail_count),
        "duplicate": int(totals.duplicate_count),
    }
    points = []
    for row in newest_first:  # walk back from the totals
        points.append(
            {
                "ts": epoch_s(row.second),
                "success": row.success_count,
                "fail": row.fail_count,
                "duplicate": row.duplicate_count,
                "cumulativeSuccess": running["success"],
                "cumulativeFail": running["fail"],
                "cumulativeDuplicate": running["duplicate"],
                "stockLeft": min(row.stock_after, totals.total_stock),
            }
        )
        running["success"] -= row.success_count
        running["fail"] -= row.fail_count
        running["duplicate"] -= row.duplicate_count
    points.reverse()
    return int(totals.total_stock), points


def decided_per_second(conn: Connection, now: dt.datetime, window_s: int = 5) -> float:
    """Decisions per second over the last `window_s` complete seconds, all campaigns."""
    end = now.replace(microsecond=0)
    s = campaign_second.c
    total = conn.scalar(
        select(func.coalesce(func.sum(s.success_count + s.fail_count + s.duplicate_count), 0)).where(
            s.second >= end - dt.timedelta(seconds=window_s), s.second < end
        )
    )
    return round(float(total or 0) / window_s, 1)


def record_lag_sample(conn: Connection, topic: str, partitions: Sequence[dict[str, int]], at: dt.datetime) -> None:
    """One sample per partition and second (the first writer of a second wins, others are ignored)."""
    if not partitions:
        return
    rows = [
        {
            "topic": topic,
            "partition_id": p["partition"],
            "sampled_at": at.replace(microsecond=0),
            "end_offset": p["endOffset"],
            "committed_offset": p["committedOffset"],
        }
        for p in partitions
    ]
    conn.execute(mysql_insert(consumer_lag_sample).prefix_with("IGNORE"), rows)


def prune_lag_samples(conn: Connection, before: dt.datetime) -> int:
    return int(conn.execute(delete(consumer_lag_sample).where(consumer_lag_sample.c.sampled_at < before)).rowcount)


def lag_history(conn: Connection, topic: str, after: dt.datetime) -> dict[int, list[dict[str, int]]]:
    """Per partition, the samples after `after`, oldest first."""
    c = consumer_lag_sample.c
    rows = conn.execute(
        select(consumer_lag_sample).where(c.topic == topic, c.sampled_at > after).order_by(c.partition_id, c.sampled_at)
    )
    series: dict[int, list[dict[str, int]]] = {}
    for r in rows:
        series.setdefault(r.partition_id, []).append(
            {
                "ts": epoch_s(r.sampled_at),
                "endOffset": r.end_offset,
                "committedOffset": r.committed_offset,
                "lag": max(r.end_offset - r.committed_offset, 0),
            }
        )
    return series


def lag_status(samples: Sequence[dict[str, int]]) -> str:
    """Burrow-style verdict on one partition's recent samples (oldest first).

    OK: no lag now, or the consumer is moving and not falling behind. WARN: the consumer moves but the
    lag grew over the window. STALLED: lag above zero and the committed offset did not move at all.
    """
    if not samples:
        return "UNKNOWN"
    first, last = samples[0], samples[-1]
    if last["lag"] == 0:
        return "OK"
    if len(samples) >= 3 and last["committedOffset"] == first["committedOffset"]:
        return "STALLED"
    if len(samples) >= 3 and last["lag"] > first["lag"]:
        return "WARN"
    return "OK"
