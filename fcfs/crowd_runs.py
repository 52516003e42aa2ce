"""Crowd runs: what the API that starts a crowd and the crowd's process that runs it share — the bounds of
a run, where it may be aimed, its table and how its status is read."""

from __future__ import annotations

import datetime as dt
import enum
import ipaddress
from collections.abc import Sequence
from typing import Any, Literal
from urllib.parse import urlsplit

from sqlalchemy import Engine, Row, insert, select, text, update

from fcfs.db import release_lock, utcnow
from fcfs.schema import crowd_run, crowd_run_second

MAX_USERS = 100_000
MAX_SECONDS = 600.0
MAX_REPEAT_SHARE = 0.5
MAX_CONNECTIONS = 1_000
MAX_WAIT_SHARE = 1.0
Shape = Literal["flat", "rush"]
SHAPES: tuple[Shape, ...] = ("flat", "rush")
ALIVE_WITHIN = dt.timedelta(seconds=10)  # a run whose process is silent longer is LOST
START_LOCK = "fcfs:crowd:start"


def repeats(users: int, repeat_share: float) -> int:
    """The repeat clicks that make `repeat_share` of all clicks when `users` click once each."""
    return round(users * repeat_share / (1 - repeat_share))


def is_loopback(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


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


def create_run(
    engine: Engine,
    *,
    campaign_id: int,
    target_url: str,
    users: int,
    seconds: float,
    repeat_share: float,
    shape: Shape,
    connections: int,
    wait_share: float = 0.0,
) -> int:
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
                    users=users,
                    seconds=seconds,
                    repeat_share=repeat_share,
                    shape=shape,
                    connections=connections,
                    wait_share=wait_share,
                    planned=users + repeats(users, repeat_share),
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


def list_runs(engine: Engine, *, limit: int) -> Sequence[Row[Any]]:
    with engine.connect() as conn:
        return conn.execute(select(crowd_run).order_by(crowd_run.c.id.desc()).limit(limit)).all()


def run_seconds(engine: Engine, run_id: int) -> Sequence[Row[Any]]:
    with engine.connect() as conn:
        return conn.execute(
            select(crowd_run_second).where(crowd_run_second.c.run_id == run_id).order_by(crowd_run_second.c.second)
        ).all()


def request_stop(engine: Engine, run_id: int) -> None:
    with engine.begin() as conn:
        conn.execute(update(crowd_run).where(crowd_run.c.id == run_id).values(stop_requested=True))


def end_run(
    engine: Engine, run_id: int, status: RunStatus, *, error: str | None = None, measured: dict[str, Any] | None = None
) -> None:
    """The run's last word: its status, why it failed, and (from its process) the totals it measured."""
    now = utcnow()
    values: dict[str, Any] = {"status": status, "heartbeat_at": now, "ended_at": now, "error": error}
    with engine.begin() as conn:
        conn.execute(update(crowd_run).where(crowd_run.c.id == run_id).values(**values, **(measured or {})))
