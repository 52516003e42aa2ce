"""What the operators' views of the running system read: workers' heartbeats, the lag samples and the load
placed on each partition."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Engine, Row, select

from backend.queries.timeline import decided_per_second, lag_history
from fcfs.placement import PartitionLoad, live_load
from fcfs.schema import alert, worker_heartbeat


def recent_workers(engine: Engine, *, since: dt.datetime) -> Sequence[Row[Any]]:
    """Workers that beat since `since`, the latest first."""
    with engine.connect() as conn:
        return conn.execute(
            select(worker_heartbeat)
            .where(worker_heartbeat.c.heartbeat_at > since)
            .order_by(worker_heartbeat.c.heartbeat_at.desc())
        ).all()


def partition_figures(
    engine: Engine, *, topic: str, since: dt.datetime, now: dt.datetime, partitions: int
) -> tuple[dict[int, list[dict[str, int]]], float, list[PartitionLoad]]:
    """(lag samples per partition since `since`, decisions per second lately, the live load of each partition)."""
    with engine.connect() as conn:
        return lag_history(conn, topic, since), decided_per_second(conn, now), live_load(conn, partitions)


def lag_series(engine: Engine, *, topic: str, since: dt.datetime) -> dict[int, list[dict[str, int]]]:
    with engine.connect() as conn:
        return lag_history(conn, topic, since)


def recent_alerts(engine: Engine, *, limit: int) -> Sequence[Row[Any]]:
    """The alerter's newest incidents and events (fcfs/alerts.py)."""
    with engine.connect() as conn:
        return conn.execute(select(alert).order_by(alert.c.id.desc()).limit(limit)).all()
