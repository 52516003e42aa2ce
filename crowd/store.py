"""Crowd runs in the database: created by the admin API or the CLI, reported on once a second by the
crowd's process, read by the dashboard, stopped by setting a flag the process reads."""

from __future__ import annotations

import datetime as dt
import enum
import json
import os
import socket
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Engine, Row, insert, select, text, update
from sqlalchemy.dialects.mysql import insert as mysql_insert

from crowd.plan import Plan
from crowd.runner import Report
from fcfs.db import release_lock, utcnow
from fcfs.schema import crowd_run, crowd_run_second

ALIVE_WITHIN = dt.timedelta(seconds=10)  # a run whose process is silent longer is LOST


class RunStatus(enum.StrEnum):
    STARTING = "STARTING"  # created; its process has not reported yet
    RUNNING = "RUNNING"
    FINISHED = "FINISHED"  # every click sent, the answers in
    STOPPED = "STOPPED"  # stopped by an operator (or a signal) before the end
    FAILED = "FAILED"  # could not run: the error says why
    LOST = "LOST"  # never stored: its process stopped reporting (killed, machine gone)


ACTIVE = (RunStatus.STARTING, RunStatus.RUNNING)


def status_of(row: Row[Any], now: dt.datetime) -> RunStatus:
    status = RunStatus(row.status)
    if status in ACTIVE and now - row.heartbeat_at >= ALIVE_WITHIN:
        return RunStatus.LOST
    return status


class CrowdRunning(Exception):
    """Another crowd is starting or running (its process alive): one at a time."""

    def __init__(self, run_id: int) -> None:
        super().__init__(f"crowd run {run_id} is still running: stop it or wait")
        self.run_id = run_id


START_LOCK = "fcfs:crowd:start"


def create_run(engine: Engine, campaign_id: int, target_url: str, plan: Plan, connections: int) -> int:
    """A new run, STARTING; CrowdRunning if another one is active. The check and the insert are one step for
    every process that starts crowds (the API's and the CLI's), under a database lock."""
    now = utcnow()
    with engine.connect() as conn:
        if conn.scalar(text("SELECT GET_LOCK(:name, 10)"), {"name": START_LOCK}) != 1:
            raise CrowdRunning(0)
        try:
            running = conn.execute(
                select(crowd_run.c.id)
                .where(crowd_run.c.status.in_(ACTIVE), crowd_run.c.heartbeat_at > now - ALIVE_WITHIN)
                .order_by(crowd_run.c.id.desc())
                .limit(1)
            ).scalar()
            if running is not None:
                raise CrowdRunning(int(running))
            result = conn.execute(
                insert(crowd_run).values(
                    campaign_id=campaign_id,
                    target_url=target_url,
                    users=plan.users,
                    seconds=plan.seconds,
                    repeat_share=plan.repeat_share,
                    shape=plan.shape,
                    connections=connections,
                    planned=plan.clicks_total,
                    status=RunStatus.STARTING,
                    answers="{}",
                    created_at=now,
                    heartbeat_at=now,
                )
            )
            conn.commit()
        finally:
            release_lock(conn, START_LOCK, close=False)
    return int(result.inserted_primary_key[0])  # type: ignore[index]


def get_run(engine: Engine, run_id: int) -> Row[Any] | None:
    with engine.connect() as conn:
        return conn.execute(select(crowd_run).where(crowd_run.c.id == run_id)).first()


def list_runs(engine: Engine, limit: int) -> Sequence[Row[Any]]:
    with engine.connect() as conn:
        return conn.execute(select(crowd_run).order_by(crowd_run.c.id.desc()).limit(limit)).all()


def run_seconds(engine: Engine, run_id: int) -> Sequence[Row[Any]]:
    with engine.connect() as conn:
        return conn.execute(
            select(crowd_run_second).where(crowd_run_second.c.run_id == run_id).order_by(crowd_run_second.c.second)
        ).all()


def claim(engine: Engine, run_id: int) -> bool:
    """The crowd's process takes its run: STARTING becomes RUNNING (False: not a run waiting to start)."""
    now = utcnow()
    with engine.begin() as conn:
        claimed = conn.execute(
            update(crowd_run)
            .where(crowd_run.c.id == run_id, crowd_run.c.status == RunStatus.STARTING)
            .values(
                status=RunStatus.RUNNING,
                started_at=now,
                heartbeat_at=now,
                host=socket.gethostname()[:255],
                pid=os.getpid(),
            )
        ).rowcount
    return claimed == 1


def request_stop(engine: Engine, run_id: int) -> None:
    with engine.begin() as conn:
        conn.execute(update(crowd_run).where(crowd_run.c.id == run_id).values(stop_requested=True))


def _measured(report: Report) -> dict[str, Any]:
    return {
        "sent": report.sent,
        "accepted": report.accepted,
        "refused": report.refused,
        "failed": report.failed,
        "answers": json.dumps(report.answers, sort_keys=True),
        "p50_ms": report.overall.p50,
        "p95_ms": report.overall.p95,
        "p99_ms": report.overall.p99,
        "max_ms": report.overall.max,
        "behind_s": report.behind_s,
    }


def record(engine: Engine, run_id: int, report: Report, second: dt.datetime) -> bool:
    """Store a second's report (the totals on the run, the second's own figures beside them); answer
    whether an operator asked the run to stop."""
    w, p = report.second, report.second_percentiles
    with engine.begin() as conn:
        conn.execute(
            update(crowd_run).where(crowd_run.c.id == run_id).values(heartbeat_at=utcnow(), **_measured(report))
        )
        if w.sent or w.accepted or w.refused or w.failed:
            counts = {"sent": w.sent, "accepted": w.accepted, "refused": w.refused, "failed": w.failed}
            stmt = mysql_insert(crowd_run_second).values(
                run_id=run_id, second=second, p50_ms=p.p50, p95_ms=p.p95, p99_ms=p.p99, **counts
            )
            conn.execute(  # two reports in one wall-clock second (the last one): their counts add up
                stmt.on_duplicate_key_update(
                    {k: getattr(crowd_run_second.c, k) + stmt.inserted[k] for k in counts}
                    | {k: stmt.inserted[k] for k in ("p50_ms", "p95_ms", "p99_ms")}
                )
            )
        return bool(conn.scalar(select(crowd_run.c.stop_requested).where(crowd_run.c.id == run_id)))


def finish(engine: Engine, run_id: int, status: RunStatus, report: Report | None, error: str | None = None) -> None:
    now = utcnow()
    values: dict[str, Any] = {"status": status, "heartbeat_at": now, "ended_at": now, "error": error}
    if report is not None:
        values.update(_measured(report))
    with engine.begin() as conn:
        conn.execute(update(crowd_run).where(crowd_run.c.id == run_id).values(**values))
