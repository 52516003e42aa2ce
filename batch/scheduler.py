"""The scheduler process: aggregate yesterday at 02:00, catch up missed days at start, prune old job records.

python -m batch.scheduler
"""

from __future__ import annotations

import datetime as dt
import logging
import signal
import sys

from apscheduler.schedulers.blocking import BlockingScheduler
from apscheduler.triggers.cron import CronTrigger
from sqlalchemy import Engine

from fcfs.aggregation import (
    AggregationAlreadyRunning,
    abandon_orphaned_jobs,
    aggregate_day,
    last_completed_day,
    prune_job_history,
)
from fcfs.days import days_between, local_today
from fcfs.db import make_engine
from fcfs.schema import JobStatus, JobTrigger
from fcfs.settings import Settings, get_settings

log = logging.getLogger("batch.scheduler")
CATCH_UP_DAYS = 30


def days_to_catch_up(last_completed: dt.date | None, today: dt.date, limit: int = CATCH_UP_DAYS) -> list[dt.date]:
    """Every day after the last completed one up to yesterday, at most `limit` days back."""
    yesterday = today - dt.timedelta(days=1)
    earliest = yesterday - dt.timedelta(days=limit - 1)
    first = earliest if last_completed is None else max(last_completed + dt.timedelta(days=1), earliest)
    return list(days_between(first, yesterday)) if first <= yesterday else []


def aggregate_scheduled(engine: Engine, settings: Settings, day: dt.date) -> JobStatus | None:
    """One scheduled run; a run of the same day already in progress is left to finish."""
    try:
        job_id, status = aggregate_day(engine, day, JobTrigger.SCHEDULED, settings.tz)
    except AggregationAlreadyRunning as exc:
        log.info("aggregation of %s already running (job %s): skipped", day, exc.job_id)
        return None
    log.info("scheduled aggregation of %s: job %d %s", day, job_id, status.value)
    return status


def catch_up(engine: Engine, settings: Settings, today: dt.date | None = None) -> dict[dt.date, JobStatus | None]:
    """Aggregate every day missed since the last successful run (bounded); return each day's outcome."""
    today = today or local_today(settings.tz)
    with engine.connect() as conn:
        last = last_completed_day(conn)
    missed = days_to_catch_up(last, today)
    if missed:
        log.info("catching up %d day(s): %s .. %s", len(missed), missed[0], missed[-1])
    return {day: aggregate_scheduled(engine, settings, day) for day in missed}


def nightly(engine: Engine, settings: Settings) -> None:
    aggregate_scheduled(engine, settings, local_today(settings.tz) - dt.timedelta(days=1))


def build_scheduler(engine: Engine, settings: Settings) -> BlockingScheduler:
    scheduler = BlockingScheduler(timezone=settings.tz)
    defaults = {"coalesce": True, "max_instances": 1, "misfire_grace_time": 3600}
    scheduler.add_job(
        nightly,
        CronTrigger(hour=2, minute=0, timezone=settings.tz),
        args=[engine, settings],
        id="aggregate-yesterday",
        **defaults,
    )
    scheduler.add_job(
        prune_job_history,
        CronTrigger(hour=3, minute=30, timezone=settings.tz),
        args=[engine],
        id="prune-job-history",
        **defaults,
    )
    return scheduler


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s", stream=sys.stderr)
    settings = get_settings()
    settings.check_secrets(log)
    engine = make_engine(isolation_level="READ COMMITTED", pool_size=2)
    abandon_orphaned_jobs(engine)
    catch_up(engine, settings)
    prune_job_history(engine)
    scheduler = build_scheduler(engine, settings)
    signal.signal(signal.SIGTERM, lambda *_: scheduler.shutdown(wait=False))
    log.info("scheduler up: aggregation daily at 02:00 %s", settings.timezone)
    try:
        scheduler.start()
    except (KeyboardInterrupt, SystemExit):
        pass
    finally:
        engine.dispose()
    log.info("scheduler stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
