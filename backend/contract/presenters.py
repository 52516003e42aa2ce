"""Database rows to the API's camelCase JSON."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Row

from fcfs.campaigns import CampaignStatus, campaign_status
from fcfs.crowd_runs import status_of
from fcfs.db import utcnow
from fcfs.dead_letters import PREVIEW_BYTES, StoredDeadLetter, printable
from fcfs.epoch import epoch_seconds
from fcfs.simulated import is_simulated

WORKER_ALIVE_WITHIN = dt.timedelta(seconds=10)  # a worker silent longer is LOST


def iso(value: dt.datetime | None, tz: ZoneInfo) -> str | None:
    """A stored naive-UTC timestamp as ISO 8601 in the configured time zone."""
    return None if value is None else value.replace(tzinfo=dt.UTC).astimezone(tz).isoformat()


def campaign_json(row: Row[Any], tz: ZoneInfo, now: dt.datetime | None = None) -> dict[str, Any]:
    return {
        "id": row.id,
        "name": row.name,
        "totalStock": row.total_stock,
        "currentStock": row.current_stock,
        "status": status_of_campaign(row, now).value,
        "mode": row.mode.value,
        "partition": row.kafka_partition,
        "weight": row.weight,
        "startsAt": iso(row.starts_at, tz),
        "endsAt": iso(row.ends_at, tz),
        "soldOutAt": iso(row.sold_out_at, tz),
        "createdAt": iso(row.created_at, tz),
        "paused": bool(row.paused),
        "claimSeconds": row.claim_seconds,
        "releasedCount": row.released_count,
        **pre_queue_json(row, tz),
    }


def pre_queue_json(row: Row[Any], tz: ZoneInfo) -> dict[str, Any]:
    """A campaign's fair opening: its pre-queue, the draw's commitment and, once drawn, its seed."""
    drawn = row.drawn_at is not None
    return {
        "preQueueSeconds": row.pre_queue_seconds,
        "preQueueOrder": row.pre_queue_order.value,
        "preQueuedCount": row.pre_queued_count,
        "drawCommitment": row.draw_commitment,
        "drawSeed": row.draw_seed if drawn else None,
        "drawnAt": iso(row.drawn_at, tz),
        "preQueueDigest": row.pre_queue_digest,
        "drawWinners": row.draw_winners,
    }


def status_of_campaign(row: Row[Any], now: dt.datetime | None = None) -> CampaignStatus:
    return campaign_status(row.starts_at, row.ends_at, row.current_stock, now or utcnow(), row.pre_queue_seconds)


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
        "totalParticipation": row.success_count + row.fail_count + row.duplicate_count + row.released_count,
        "stockUsageRate": f"{(winners * 100 / row.total_stock) if row.total_stock else 0:.2f}%",
        "status": status_of_campaign(row, now).value,
        "paused": bool(row.paused),
        "releasedCount": row.released_count,
    }


def switch_json(row: Row[Any], tz: ZoneInfo) -> dict[str, Any]:
    """A row of the switch log."""
    return {
        "id": row.id,
        "campaignId": row.campaign_id,
        "ts": epoch_seconds(row.at),
        "at": iso(row.at, tz),
        "action": row.action.value,
        "actor": row.actor,
        "address": row.address,
        "endsAtBefore": iso(row.ends_at_before, tz),
        "endsAtAfter": iso(row.ends_at_after, tz),
        "stockAdded": row.stock_added,
        "promoted": row.promoted,
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


def winner_json(row: Any, position: int, tz: ZoneInfo) -> dict[str, Any]:
    return {
        "position": position,
        "userId": row.user_id,
        "requestId": row.request_id,
        "decidedAt": iso(row.decided_at, tz),
        "kafkaPartition": row.kafka_partition,
        "kafkaOffset": row.kafka_offset,
        "simulated": is_simulated(row.user_id),
        "claimedAt": iso(row.claimed_at, tz),
        "promoted": row.promoted_at is not None,
    }


def run_json(row: Row[Any], tz: ZoneInfo, seconds: Sequence[Row[Any]] | None = None) -> dict[str, Any]:
    data = {
        "runId": row.id,
        "campaignId": row.campaign_id,
        "targetUrl": row.target_url,
        "users": row.users,
        "seconds": row.seconds,
        "repeatShare": row.repeat_share,
        "shape": row.shape,
        "connections": row.connections,
        "planned": row.planned,
        "status": status_of(row, utcnow()).value,
        "stopRequested": bool(row.stop_requested),
        "sent": row.sent,
        "accepted": row.accepted,
        "refused": row.refused,
        "failed": row.failed,
        "answers": json.loads(row.answers),
        "p50Ms": row.p50_ms,
        "p95Ms": row.p95_ms,
        "p99Ms": row.p99_ms,
        "maxMs": row.max_ms,
        "behindS": row.behind_s,
        "waitShare": row.wait_share,
        "outcomes": json.loads(row.outcomes) if row.outcomes else {},
        "outcomeP50Ms": row.outcome_p50_ms,
        "outcomeP95Ms": row.outcome_p95_ms,
        "outcomeP99Ms": row.outcome_p99_ms,
        "outcomeMaxMs": row.outcome_max_ms,
        "error": row.error,
        "createdAt": iso(row.created_at, tz),
        "startedAt": iso(row.started_at, tz),
        "endedAt": iso(row.ended_at, tz),
        "heartbeatAt": iso(row.heartbeat_at, tz),
    }
    if seconds is not None:
        data["perSecond"] = [
            {
                "at": iso(s.second, tz),
                "sent": s.sent,
                "accepted": s.accepted,
                "refused": s.refused,
                "failed": s.failed,
                "p50Ms": s.p50_ms,
                "p95Ms": s.p95_ms,
                "p99Ms": s.p99_ms,
            }
            for s in seconds
        ]
    return data


def worker_json(r: Row[Any], now: dt.datetime, tz: ZoneInfo) -> dict[str, Any]:
    return {
        "workerId": r.worker_id,
        "consumerGroup": r.consumer_group,
        "topic": r.topic,
        "partitions": [int(p) for p in r.partitions.split(",") if p],
        "state": r.state,
        "status": worker_status(r.state, now - r.heartbeat_at),
        "alive": r.state != "STOPPED" and now - r.heartbeat_at < WORKER_ALIVE_WITHIN,
        "decidedTotal": r.decided_total,
        "deadLetteredTotal": r.dead_lettered_total,
        "batchesTotal": r.batches_total,
        "dbRetriesTotal": r.db_retries_total,
        "lastBatchAt": iso(r.last_batch_at, tz),
        "heartbeatAt": iso(r.heartbeat_at, tz),
        "startedAt": iso(r.started_at, tz),
    }


def worker_status(state: str, silent_for: dt.timedelta) -> str:
    """STOPPED when it left cleanly; LOST when its heartbeat is older than WORKER_ALIVE_WITHIN (killed, hung, cut
    off); else what it last reported (RUNNING, RETRYING, …)."""
    if state == "STOPPED":
        return "STOPPED"
    return "LOST" if silent_for >= WORKER_ALIVE_WITHIN else state


def dead_letter_json(
    stored: StoredDeadLetter, replayed: bool, preview_bytes: int | None = PREVIEW_BYTES
) -> dict[str, Any]:
    """The letter as the API shows it: with `preview_bytes`, at most that much of the key and value
    (`valueComplete` false when cut); None: all of them."""
    letter = stored.letter
    value, encoding = printable(letter.value, preview_bytes)
    return {
        "dlqPartition": stored.partition,
        "dlqOffset": stored.offset,
        "timestamp": stored.timestamp_ms,
        "code": letter.code,
        "reason": letter.reason,
        "sourceTopic": letter.source_topic,
        "sourcePartition": letter.source_partition,
        "sourceOffset": letter.source_offset,
        "key": printable(letter.key, preview_bytes)[0],
        "value": value,
        "valueEncoding": encoding,
        "valueSize": len(letter.value or b""),
        "valueComplete": preview_bytes is None or len(letter.value or b"") <= preview_bytes,
        "replayed": replayed,
        **(
            {
                "truncated": letter.truncated,
                "originalSize": letter.original_size,
                "originalSha256": letter.original_sha256,
            }
            if letter.truncated
            else {}
        ),
    }


def user_request_json(row: Row[Any], winners_before: int, tz: ZoneInfo) -> dict[str, Any]:
    """One of a user's decided requests, as the support look-up shows it."""
    return {
        "requestId": row.request_id,
        "status": row.status.value,
        "channel": row.channel.value,
        "requestedAt": iso(row.requested_at, tz),
        "decidedAt": iso(row.decided_at, tz),
        "kafkaPartition": row.kafka_partition,
        "kafkaOffset": row.kafka_offset,
        "winnersBefore": winners_before,
    }
