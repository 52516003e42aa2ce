"""Database rows to the API's camelCase JSON."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Row

from fcfs.campaigns import campaign_status
from fcfs.db import utcnow


def iso(value: dt.datetime | None, tz: ZoneInfo) -> str | None:
    """A stored naive-UTC timestamp as ISO 8601 in the configured time zone."""
    return None if value is None else value.replace(tzinfo=dt.UTC).astimezone(tz).isoformat()


def campaign_json(row: Row[Any], tz: ZoneInfo, now: dt.datetime | None = None) -> dict[str, Any]:
    return {
        "id": row.id,
        "name": row.name,
        "totalStock": row.total_stock,
        "currentStock": row.current_stock,
        "status": campaign_status(row.starts_at, row.ends_at, row.current_stock, now or utcnow()).value,
        "mode": row.mode.value,
        "partition": row.kafka_partition,
        "weight": row.weight,
        "startsAt": iso(row.starts_at, tz),
        "endsAt": iso(row.ends_at, tz),
        "soldOutAt": iso(row.sold_out_at, tz),
        "createdAt": iso(row.created_at, tz),
    }


def campaign_status_json(row: Row[Any], now: dt.datetime | None = None) -> dict[str, Any]:
    winners = row.total_stock - row.current_stock
    return {
        "campaignId": row.id,
        "campaignName": row.name,
        "totalStock": row.total_stock,
        "currentStock": row.current_stock,
        "successCount": row.success_count,
        "failCount": row.fail_count,
        "duplicateCount": row.duplicate_count,
        "totalParticipation": row.success_count + row.fail_count + row.duplicate_count,
        "stockUsageRate": f"{(winners * 100 / row.total_stock) if row.total_stock else 0:.2f}%",
        "status": campaign_status(row.starts_at, row.ends_at, row.current_stock, now or utcnow()).value,
    }


def job_json(row: Row[Any], tz: ZoneInfo) -> dict[str, Any]:
    """A record of the aggregation job, its times in the configured time zone."""
    duration = None
    if row.ended_at is not None:
        duration = round((row.ended_at - row.started_at).total_seconds() * 1000)
    return {
        "jobExecutionId": row.id,
        "jobName": row.job_name,
        "date": row.target_date.isoformat(),
        "trigger": row.trigger_type.value,
        "status": row.status.value,
        "startedAt": iso(row.started_at, tz),
        "endedAt": iso(row.ended_at, tz),
        "durationMs": duration,
        "campaignsTotal": row.campaigns_total,
        "campaignsFailed": row.campaigns_failed,
        "campaignResults": json.loads(row.campaign_results) if row.campaign_results else [],
        "error": row.error,
    }
