"""The daily aggregation job: per campaign and day, one `campaign_stats` row from the history.

Each campaign is aggregated in its own transaction, so one failure does not undo the others (the
run ends PARTIAL and names it). Re-running a date recomputes the same rows. Runs of the same date
never overlap: a run holds the database lock `fcfs:aggregate:<date>` (GET_LOCK, released by the
server if the process dies), and a second request while it is held is refused.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, Engine, Row, case, delete, func, or_, select, text, update
from sqlalchemy.dialects.mysql import insert as mysql_insert

from fcfs.days import day_bounds
from fcfs.db import release_lock, short_error, utcnow
from fcfs.schema import (
    JobStatus,
    JobTrigger,
    Outcome,
    batch_job_execution,
    campaign,
    campaign_stats,
    participation_history,
)

log = logging.getLogger(__name__)
JOB_NAME = "dailyCampaignStats"
RETENTION_DAYS = 90
ABANDONED = "abandoned: the process running it stopped"


class AggregationAlreadyRunning(Exception):
    """Another run of the same date holds the lock."""

    def __init__(self, day: dt.date, job_id: int | None) -> None:
        super().__init__(f"an aggregation of {day} is already running")
        self.day = day
        self.job_id = job_id


@dataclass
class StartedJob:
    """A run that holds its date's lock (on `lock_conn`) and has a STARTED job record."""

    job_id: int
    day: dt.date
    lock_conn: Connection
    results: list[dict[str, Any]] = field(default_factory=list)


def lock_name(day: dt.date) -> str:
    return f"fcfs:aggregate:{day.isoformat()}"


def start_job(engine: Engine, day: dt.date, trigger: JobTrigger) -> StartedJob:
    """Take the date's lock and record the run as STARTED; raise AggregationAlreadyRunning if held."""
    conn = engine.connect()
    try:
        if conn.scalar(text("SELECT GET_LOCK(:name, 0)"), {"name": lock_name(day)}) != 1:
            running = conn.scalar(
                select(func.max(batch_job_execution.c.id)).where(
                    batch_job_execution.c.job_name == JOB_NAME,
                    batch_job_execution.c.target_date == day,
                    batch_job_execution.c.status == JobStatus.STARTED,
                )
            )
            raise AggregationAlreadyRunning(day, running)
        now = utcnow()
        # A STARTED record without the lock held belongs to a process that died mid-run.
        conn.execute(
            update(batch_job_execution)
            .where(
                batch_job_execution.c.job_name == JOB_NAME,
                batch_job_execution.c.target_date == day,
                batch_job_execution.c.status == JobStatus.STARTED,
            )
            .values(status=JobStatus.FAILED, ended_at=now, error=ABANDONED)
        )
        job_id = conn.execute(
            batch_job_execution.insert().values(
                job_name=JOB_NAME, target_date=day, trigger_type=trigger, status=JobStatus.STARTED, started_at=now
            )
        ).inserted_primary_key[0]  # type: ignore[index]
        conn.commit()
    except BaseException:
        release_lock(conn, lock_name(day))
        raise
    log.info("aggregation job %d for %s started (%s)", job_id, day, trigger.value)
    return StartedJob(int(job_id), day, conn)


def run_job(engine: Engine, job: StartedJob, tz: ZoneInfo) -> JobStatus:
    """Aggregate every campaign of the job's date, each in its own transaction; record the outcome."""
    status, error = JobStatus.FAILED, None
    try:
        start, end = day_bounds(job.day, tz)
        with engine.connect() as conn:
            campaign_ids = campaigns_to_aggregate(conn, job.day, start, end)
        failures = []
        for campaign_id in campaign_ids:
            try:
                with engine.begin() as conn:
                    total = aggregate_campaign_day(conn, campaign_id, job.day, start, end)
                if total:  # campaigns without history that day are checked but not listed
                    job.results.append({"campaignId": campaign_id, "status": "OK", "totalCount": total})
            except Exception as exc:  # noqa: BLE001 - one campaign's failure must not stop the others
                message = short_error(exc, 500)
                log.warning("aggregation of campaign %d for %s failed: %s", campaign_id, job.day, message)
                failures.append(f"campaign {campaign_id}: {message}")
                job.results.append({"campaignId": campaign_id, "status": "FAILED", "error": message})
        if not failures:
            status = JobStatus.COMPLETED
        else:
            status = JobStatus.PARTIAL if len(failures) < len(campaign_ids) else JobStatus.FAILED
            error = "; ".join(failures)[:60_000]
    except Exception as exc:
        log.exception("aggregation job %d failed", job.job_id)
        error = short_error(exc, 500)
    finally:
        _finish(engine, job, status, error)
    return status


def abandon_orphaned_jobs(engine: Engine) -> list[int]:
    """Mark FAILED every STARTED run that no process is running (its date's lock is free): left behind
    by a process that stopped mid-run. Called at start-up by every process that runs jobs."""
    abandoned = []
    with engine.connect() as conn:
        started = conn.execute(
            select(batch_job_execution.c.id, batch_job_execution.c.target_date).where(
                batch_job_execution.c.job_name == JOB_NAME, batch_job_execution.c.status == JobStatus.STARTED
            )
        ).all()
        for job_id, day in started:
            if conn.scalar(text("SELECT GET_LOCK(:name, 0)"), {"name": lock_name(day)}) != 1:
                continue  # running in another process
            try:
                conn.execute(
                    update(batch_job_execution)
                    .where(batch_job_execution.c.id == job_id, batch_job_execution.c.status == JobStatus.STARTED)
                    .values(status=JobStatus.FAILED, ended_at=utcnow(), error=ABANDONED)
                )
                conn.commit()
                abandoned.append(job_id)
            finally:
                release_lock(conn, lock_name(day), close=False)
    if abandoned:
        log.warning("aggregation jobs %s were left STARTED by a stopped process: marked FAILED", abandoned)
    return abandoned


def aggregate_day(engine: Engine, day: dt.date, trigger: JobTrigger, tz: ZoneInfo) -> tuple[int, JobStatus]:
    """Start and run a job for `day` in this thread."""
    job = start_job(engine, day, trigger)
    return job.job_id, run_job(engine, job, tz)


def _finish(engine: Engine, job: StartedJob, status: JobStatus, error: str | None) -> None:
    failed = sum(1 for r in job.results if r["status"] == "FAILED")
    try:
        with engine.begin() as conn:
            conn.execute(
                update(batch_job_execution)
                .where(batch_job_execution.c.id == job.job_id)
                .values(
                    status=status,
                    ended_at=utcnow(),
                    campaigns_total=len(job.results),
                    campaigns_failed=failed,
                    campaign_results=json.dumps(job.results),
                    error=error,
                )
            )
    finally:
        release_lock(job.lock_conn, lock_name(job.day))
    log.info(
        "aggregation job %d for %s: %s (%d campaigns, %d failed)",
        job.job_id,
        job.day,
        status.value,
        len(job.results),
        failed,
    )


def campaigns_to_aggregate(conn: Connection, day: dt.date, start: dt.datetime, end: dt.datetime) -> list[int]:
    """Campaigns that could have history on the day, and any that already have a row for it."""
    live = select(campaign.c.id).where(
        campaign.c.created_at < end,
        or_(campaign.c.ends_at.is_(None), campaign.c.ends_at >= start - dt.timedelta(days=1)),
    )
    existing = select(campaign_stats.c.campaign_id).where(campaign_stats.c.stats_date == day)
    ids = {row[0] for row in conn.execute(live)} | {row[0] for row in conn.execute(existing)}
    return sorted(ids)


def aggregate_campaign_day(
    conn: Connection, campaign_id: int, day: dt.date, start: dt.datetime, end: dt.datetime
) -> int:
    """Recompute (upsert, or delete when empty) the campaign's row for the day; return its total."""
    h = participation_history.c
    row = conn.execute(
        select(
            func.count().label("total"),
            func.coalesce(func.sum(case((h.status == Outcome.SUCCESS, 1), else_=0)), 0).label("success"),
            func.coalesce(func.sum(case((h.status == Outcome.FAIL, 1), else_=0)), 0).label("fail"),
            func.coalesce(func.sum(case((h.status == Outcome.DUPLICATE, 1), else_=0)), 0).label("duplicate"),
            func.count(h.user_id.distinct()).label("unique_users"),
            func.min(h.requested_at).label("first_request_at"),
            func.max(h.requested_at).label("last_request_at"),
        ).where(h.campaign_id == campaign_id, h.decided_at >= start, h.decided_at < end)
    ).one()
    key = (campaign_stats.c.stats_date == day) & (campaign_stats.c.campaign_id == campaign_id)
    if row.total == 0:
        conn.execute(delete(campaign_stats).where(key))
        return 0
    values = {
        "stats_date": day,
        "campaign_id": campaign_id,
        "success_count": int(row.success),
        "fail_count": int(row.fail),
        "duplicate_count": int(row.duplicate),
        "total_count": int(row.total),
        "unique_users": int(row.unique_users),
        "first_request_at": row.first_request_at,
        "last_request_at": row.last_request_at,
        "sell_out_seconds": sell_out_seconds(conn, campaign_id, start, end),
    }
    stmt = mysql_insert(campaign_stats).values(**values)
    conn.execute(
        stmt.on_duplicate_key_update({k: stmt.inserted[k] for k in values if k not in ("stats_date", "campaign_id")})
    )
    return int(row.total)


def sell_out_seconds(conn: Connection, campaign_id: int, start: dt.datetime, end: dt.datetime) -> float | None:
    """Seconds from the campaign's first request to its sell-out, if it sold out on this day."""
    sold_out_at: dt.datetime | None = conn.scalar(select(campaign.c.sold_out_at).where(campaign.c.id == campaign_id))
    if sold_out_at is None or not start <= sold_out_at < end:
        return None
    first: dt.datetime | None = conn.scalar(
        select(participation_history.c.requested_at)
        .where(participation_history.c.campaign_id == campaign_id)
        .order_by(participation_history.c.campaign_id, participation_history.c.decided_at)
        .limit(1)
    )
    if first is None:
        return None
    return round(max((sold_out_at - first).total_seconds(), 0.0), 6)


def get_job(engine: Engine, job_id: int) -> Row[Any] | None:
    with engine.connect() as conn:
        return conn.execute(select(batch_job_execution).where(batch_job_execution.c.id == job_id)).first()


def job_history(engine: Engine, limit: int = 50) -> Sequence[Row[Any]]:
    with engine.connect() as conn:
        return conn.execute(select(batch_job_execution).order_by(batch_job_execution.c.id.desc()).limit(limit)).all()


def last_completed_day(conn: Connection) -> dt.date | None:
    day: dt.date | None = conn.scalar(
        select(func.max(batch_job_execution.c.target_date)).where(
            batch_job_execution.c.job_name == JOB_NAME, batch_job_execution.c.status == JobStatus.COMPLETED
        )
    )
    return day


def prune_job_history(engine: Engine, now: dt.datetime | None = None, keep_days: int = RETENTION_DAYS) -> int:
    """Delete job records that started more than `keep_days` ago; return how many."""
    cutoff = (now or utcnow()) - dt.timedelta(days=keep_days)
    with engine.begin() as conn:
        deleted = conn.execute(delete(batch_job_execution).where(batch_job_execution.c.started_at < cutoff)).rowcount
    log.info("pruned %d job records older than %d days", deleted, keep_days)
    return int(deleted)
