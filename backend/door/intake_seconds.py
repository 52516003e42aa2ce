"""The door's answers counted per campaign and second, written to the database once a second.

The Live page shows them next to the decisions per second: what the crowd is sending, what the door
accepts (202), and what it refuses because Kafka is unavailable (503) or the client is over its rate
(429). Counting is a dict increment on the hot path; every API process adds its counts to the same
rows. When the database is away the counts are kept (up to an hour of seconds) and written once it is back,
with the seconds it was away (backend/app/outages.py).
"""

from __future__ import annotations

import datetime as dt
import logging
import time

from sqlalchemy import Connection, Engine, delete, select
from sqlalchemy.dialects.mysql import insert as mysql_insert
from sqlalchemy.exc import OperationalError

from backend.app.outages import DATABASE_OUTAGES, write_outages
from backend.app.periodic import Periodic
from fcfs.db import utcnow
from fcfs.epoch import epoch_s, from_epoch_s
from fcfs.schema import campaign_intake_second, dependency_outage_second

log = logging.getLogger(__name__)
ACCEPTED, UNAVAILABLE, LIMITED = 0, 1, 2
COLUMNS = ("accepted", "unavailable", "limited")
KEEP = dt.timedelta(days=7)
MAX_PENDING = 3600 * 50  # (campaign, second) keys kept while the database is away


class IntakeSeconds:
    def __init__(self, engine: Engine, interval_s: float = 1.0) -> None:
        self.engine = engine
        self._counts: dict[tuple[int, int], list[int]] = {}
        self._next_prune = 0.0
        # the last second's counts are written at stop; a failed write is logged in flush and kept for the next
        self._periodic = Periodic("intake-seconds", self.flush, interval_s, at_stop=True)

    def start(self) -> None:
        self._periodic.start()

    async def stop(self) -> None:
        await self._periodic.stop()

    def count(self, campaign_id: int, answer: int) -> None:
        key = (campaign_id, int(time.time()))
        counts = self._counts.get(key)
        if counts is None:
            counts = self._counts[key] = [0, 0, 0]
        counts[answer] += 1

    def flush(self) -> None:
        """Add the counts so far (and the seconds the database was found away) to the database; keep
        them for the next try if it is away, noting the seconds it was."""
        taken, self._counts = self._counts, {}
        outages = DATABASE_OUTAGES.take()
        if not (taken or outages):
            return
        rows = [
            {"campaign_id": cid, "second": from_epoch_s(second), **dict(zip(COLUMNS, c, strict=True))}
            for (cid, second), c in taken.items()
        ]
        statement = mysql_insert(campaign_intake_second)
        statement = statement.on_duplicate_key_update(
            {name: getattr(campaign_intake_second.c, name) + statement.inserted[name] for name in COLUMNS}
        )
        started = time.time()
        try:
            with self.engine.begin() as conn:
                if rows:
                    conn.execute(statement, rows)
                if outages:
                    write_outages(conn, outages)
                if time.monotonic() >= self._next_prune:
                    self._next_prune = time.monotonic() + 600
                    old = utcnow() - KEEP
                    conn.execute(delete(campaign_intake_second).where(campaign_intake_second.c.second < old))
                    conn.execute(delete(dependency_outage_second).where(dependency_outage_second.c.second < old))
        except Exception as exc:
            log.warning("intake counts not written yet (%d seconds kept): %s", len(taken), exc)
            DATABASE_OUTAGES.put_back(outages)
            if isinstance(exc, OperationalError):  # unreachable, not a query it refused
                DATABASE_OUTAGES.note(started, time.time())
            for key, counts in taken.items():  # merge back under the counts made meanwhile
                into = self._counts.setdefault(key, [0, 0, 0])
                for i, n in enumerate(counts):
                    into[i] += n
            if len(self._counts) > MAX_PENDING:
                for key in sorted(self._counts, key=lambda k: k[1])[: len(self._counts) - MAX_PENDING]:
                    del self._counts[key]
            raise


def intake_points(conn: Connection, campaign_id: int, after: dt.datetime | None, limit: int) -> list[dict[str, int]]:
    """The newest `limit` seconds of the campaign's intake (after `after`), oldest first."""
    c = campaign_intake_second.c
    query = select(campaign_intake_second).where(c.campaign_id == campaign_id).order_by(c.second.desc()).limit(limit)
    if after is not None:
        query = query.where(c.second > after)
    rows = conn.execute(query).all()
    return [
        {
            "ts": epoch_s(r.second),
            "accepted": r.accepted,
            "unavailable": r.unavailable,
            "limited": r.limited,
        }
        for r in reversed(rows)
    ]
