"""Campaign statistics two ways: from the daily aggregates (batched) or straight from the history (raw).

Both give the same numbers for the same day; the raw form scans the day's history through the
covering index (decided_at, campaign_id, status), the batched form reads one row per campaign and day.
"""

from __future__ import annotations

import datetime as dt
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, Engine, case, func, select

from fcfs.days import day_bounds, days_between
from fcfs.schema import Outcome, campaign, campaign_stats, participation_history

Counts = dict[str, int]


def _counts(success: int, fail: int, duplicate: int, total: int) -> Counts:
    return {
        "successCount": int(success),
        "failCount": int(fail),
        "duplicateCount": int(duplicate),
        "totalCount": int(total),
    }


def raw_day(conn: Connection, day: dt.date, tz: ZoneInfo, campaign_id: int | None = None) -> dict[int, Counts]:
    """Per campaign, the day's counts computed from the history rows."""
    start, end = day_bounds(day, tz)
    h = participation_history.c
    query = (
        select(
            h.campaign_id,
            func.sum(case((h.status == Outcome.SUCCESS, 1), else_=0)),
            func.sum(case((h.status == Outcome.FAIL, 1), else_=0)),
            func.sum(case((h.status == Outcome.DUPLICATE, 1), else_=0)),
            func.count(),
        )
        .where(h.decided_at >= start, h.decided_at < end)
        .group_by(h.campaign_id)
    )
    if campaign_id is not None:
        query = query.where(h.campaign_id == campaign_id)
    return {row[0]: _counts(*row[1:]) for row in conn.execute(query)}


def raw_period(
    conn: Connection, first: dt.date, last: dt.date, tz: ZoneInfo, campaign_id: int | None = None
) -> dict[dt.date, dict[int, Counts]]:
    """Per day and campaign, from the history (one index range scan per day, so day edges follow the time zone)."""
    return {day: raw_day(conn, day, tz, campaign_id) for day in days_between(first, last)}


def batched_period(
    conn: Connection, first: dt.date, last: dt.date, campaign_id: int | None = None
) -> dict[dt.date, dict[int, dict[str, Any]]]:
    """Per day and campaign, from `campaign_stats`."""
    s = campaign_stats.c
    query = select(campaign_stats).where(s.stats_date >= first, s.stats_date <= last)
    if campaign_id is not None:
        query = query.where(s.campaign_id == campaign_id)
    result: dict[dt.date, dict[int, dict[str, Any]]] = defaultdict(dict)
    for row in conn.execute(query):
        result[row.stats_date][row.campaign_id] = {
            **_counts(row.success_count, row.fail_count, row.duplicate_count, row.total_count),
            "uniqueUsers": row.unique_users,
            "sellOutSeconds": row.sell_out_seconds,
        }
    return result


def campaign_names(conn: Connection, ids: set[int]) -> dict[int, str]:
    if not ids:
        return {}
    return {
        row.id: row.name for row in conn.execute(select(campaign.c.id, campaign.c.name).where(campaign.c.id.in_(ids)))
    }


def success_rate(success: int, total: int) -> float:
    return round(success * 100 / total, 2) if total else 0.0


def campaign_rows(per_campaign: dict[int, dict[str, Any]], names: dict[int, str]) -> list[dict[str, Any]]:
    """The `campaigns[]` of a statistics answer, by campaign id."""
    return [
        {
            "campaignId": cid,
            "campaignName": names.get(cid, ""),
            **counts,
            "successRate": success_rate(counts["successCount"], counts["totalCount"]),
        }
        for cid, counts in sorted(per_campaign.items())
    ]


def summary(per_campaign: dict[int, dict[str, Any]]) -> dict[str, Any]:
    totals = {
        key: sum(c[key] for c in per_campaign.values())
        for key in ("successCount", "failCount", "duplicateCount", "totalCount")
    }
    return {
        "campaignCount": len(per_campaign),
        **totals,
        "successRate": success_rate(totals["successCount"], totals["totalCount"]),
    }


def merge_days(per_day: dict[dt.date, dict[int, dict[str, Any]]]) -> dict[int, dict[str, Any]]:
    """Sum the counts of several days per campaign."""
    merged: dict[int, dict[str, Any]] = {}
    for campaigns in per_day.values():
        for cid, counts in campaigns.items():
            into = merged.setdefault(cid, {"successCount": 0, "failCount": 0, "duplicateCount": 0, "totalCount": 0})
            for key in into:
                into[key] += counts[key]
    return merged


def measured(
    engine: Engine, *, query: Callable[[Connection], dict[Any, dict[int, dict[str, Any]]]]
) -> tuple[dict[Any, dict[int, dict[str, Any]]], float, dict[int, str]]:
    """Run a statistics query, timing the query alone: (its rows per day and campaign, seconds, campaign names)."""
    with engine.connect() as conn:
        t0 = time.perf_counter()
        per_day = query(conn)
        elapsed = time.perf_counter() - t0
        names = campaign_names(conn, {cid for day in per_day.values() for cid in day})
    return per_day, elapsed, names
