"""The crowd's process reports on its run: it takes the run, writes what it measured once a second (reading
whether an operator asked it to stop), and its last word. The run's table, status and bounds, shared with
the API that starts crowds: `fcfs.crowd_runs`."""

from __future__ import annotations

import datetime as dt
import json
import os
import socket
from typing import Any

from sqlalchemy import Engine, select, update
from sqlalchemy.dialects.mysql import insert as mysql_insert

from crowd.runner import Report
from fcfs.crowd_runs import RunStatus, end_run
from fcfs.db import utcnow
from fcfs.schema import crowd_run, crowd_run_second


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
        "outcomes": json.dumps(report.outcomes, sort_keys=True),
        "outcome_p50_ms": report.time_to_outcome.p50,
        "outcome_p95_ms": report.time_to_outcome.p95,
        "outcome_p99_ms": report.time_to_outcome.p99,
        "outcome_max_ms": report.time_to_outcome.max,
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
    end_run(engine, run_id, status, error=error, measured=None if report is None else _measured(report))
