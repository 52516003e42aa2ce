"""Seconds in which this API process found the database unavailable: noted when a request or the
per-second intake flush cannot reach it, written (with the intake counts) once it is back, and read by
the Live page to mark the outage on its time axis."""

from __future__ import annotations

import datetime as dt
import time

from sqlalchemy import Connection, select
from sqlalchemy.dialects.mysql import insert as mysql_insert

from fcfs.epoch import epoch_s, from_epoch_s
from fcfs.schema import dependency_outage_second

DATABASE = "DATABASE"
MAX_KEPT = 86_400  # seconds kept while the database is away (a day); the oldest go first


class Outages:
    def __init__(self) -> None:
        self._seconds: set[int] = set()

    def note(self, first_s: float | None = None, last_s: float | None = None) -> None:
        """The database was unavailable from `first_s` to `last_s` (epoch seconds; default: now)."""
        first = int(time.time() if first_s is None else first_s)
        last = first if last_s is None else max(int(last_s), first)
        self._seconds.update(range(first, last + 1))
        if len(self._seconds) > MAX_KEPT:
            self._seconds = set(sorted(self._seconds)[-MAX_KEPT:])

    def take(self) -> set[int]:
        taken, self._seconds = self._seconds, set()
        return taken

    def put_back(self, seconds: set[int]) -> None:
        self._seconds |= seconds


DATABASE_OUTAGES = Outages()  # one per process: the request handlers and the flusher share it


def write_outages(conn: Connection, seconds: set[int]) -> None:
    rows = [{"dependency": DATABASE, "second": from_epoch_s(s)} for s in sorted(seconds)]
    conn.execute(mysql_insert(dependency_outage_second).prefix_with("IGNORE"), rows)


def outage_seconds(conn: Connection, after: dt.datetime, limit: int) -> list[int]:
    """The newest `limit` seconds after `after` in which an API process found the database unavailable."""
    c = dependency_outage_second.c
    rows = conn.execute(
        select(c.second).where(c.dependency == DATABASE, c.second > after).order_by(c.second.desc()).limit(limit)
    ).scalars()
    return sorted(epoch_s(second) for second in rows)
