"""Winners who must claim, and promotion: the next person in line gets a unit nobody holds.

A campaign with `claim_seconds` gives each win that long to be claimed (`claim`: one row per win, written in the
transaction that decides or promotes it). A win not claimed in time is released by the releaser
(`batch/releaser.py`): its history row becomes RELEASED and its unit goes to the campaign's earliest FAIL — each a
user's first request (I3), so a user who never won — which becomes SUCCESS with its own window; with no FAIL left
the unit goes back to the stock, for the next arrival. Stock added by an operator is promoted the same way.

Every release and promotion happens in one transaction under the campaign's row lock, the lock the worker takes to
decide a batch, so no decision comes between: winners (SUCCESS) never exceed the stock (I1's CHECKs hold at every
commit), a release and its promotion commit together or not at all (a releaser killed mid-release leaves nothing
half done: the next one starts over from what committed), and ever-won requests (SUCCESS or RELEASED) stay the
earliest first requests in log order. A claim locks only its own claim row, and only before its deadline.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from sqlalchemy import Connection, Engine

from fcfs.db import placeholders

MAX_CLAIM_SECONDS = 7 * 24 * 3600  # a win's claim window at most
EARLIEST_FAILS = (  # a campaign's FAILs in decision order (log order; the synchronous door's, by row)
    "SELECT id FROM participation_history WHERE campaign_id = %s AND status = 'FAIL' "
    "ORDER BY kafka_offset, id LIMIT %s FOR UPDATE"
)
DRAWN_FAILS = (  # a campaign drawn by DRAW: its rows' ids keep the draw's order, then the log's (fcfs/draw.py)
    "SELECT id FROM participation_history WHERE campaign_id = %s AND status = 'FAIL' ORDER BY id LIMIT %s FOR UPDATE"
)
PROMOTE = "UPDATE participation_history SET status = 'SUCCESS', promoted_at = %s WHERE id IN ({})"
OPEN_CLAIMS = (  # a win's claim window opens: the rows just decided SUCCESS or promoted
    "INSERT INTO claim (history_id, campaign_id, request_id, user_id, won_at, deadline, promoted, changed_at) "
    "SELECT id, campaign_id, request_id, user_id, %s, %s, %s, %s FROM participation_history WHERE {} IN ({})"
)
PER_SECOND = (  # the Live page's curves: winners and fails changed in this second by promotions and releases
    "INSERT INTO campaign_second (campaign_id, `second`, success_count, fail_count, duplicate_count, stock_after) "
    "VALUES (%s, %s, %s, %s, 0, %s) ON DUPLICATE KEY UPDATE success_count = success_count + VALUES(success_count), "
    "fail_count = fail_count + VALUES(fail_count), stock_after = VALUES(stock_after)"
)
DUE = (  # the campaigns with wins past their deadline, unclaimed and not released yet (the index ix_claim_due)
    "SELECT DISTINCT campaign_id FROM claim WHERE released_at IS NULL AND claimed_at IS NULL AND deadline <= %s"
)
DUE_IN = (
    "SELECT history_id FROM claim WHERE campaign_id = %s AND released_at IS NULL AND claimed_at IS NULL "
    "AND deadline <= %s ORDER BY deadline, history_id LIMIT %s FOR UPDATE"
)
CHUNK = 500  # wins released per transaction at most


def utc_text(value: dt.datetime) -> str:
    """A stored naive-UTC timestamp as ISO 8601 UTC to the millisecond (`2026-12-01T20:00:00.000Z`)."""
    return f"{value:%Y-%m-%dT%H:%M:%S}.{value.microsecond // 1000:03d}Z"


class ClaimView(NamedTuple):
    """A win's claim as the look-up tells it (a tuple: the decision feed keeps one per win it follows)."""

    state: str  # UNCLAIMED, CLAIMED or RELEASED
    deadline: str
    claimed_at: str | None
    promoted: bool

    @classmethod
    def of(
        cls, deadline: dt.datetime, claimed_at: dt.datetime | None, released_at: dt.datetime | None, promoted: Any
    ) -> ClaimView:
        state = "RELEASED" if released_at is not None else "CLAIMED" if claimed_at is not None else "UNCLAIMED"
        return cls(state, utc_text(deadline), None if claimed_at is None else utc_text(claimed_at), bool(promoted))

    def json(self) -> dict[str, Any]:
        return {"state": self.state, "deadline": self.deadline, "claimedAt": self.claimed_at}


def open_claims(
    conn: Connection, *, column: str, keys: Sequence[Any], now: dt.datetime, claim_seconds: int, promoted: bool
) -> None:
    """Open the claim window of the history rows whose `column` (`request_id` or `id`) is in `keys`."""
    deadline = now + dt.timedelta(seconds=claim_seconds)
    for start in range(0, len(keys), 10_000):
        chunk = keys[start : start + 10_000]
        conn.exec_driver_sql(
            OPEN_CLAIMS.format(column, placeholders(len(chunk))), (now, deadline, promoted, now, *chunk)
        )


def promote(conn: Connection, campaign_id: int, units: int, now: dt.datetime, claim_seconds: int) -> int:
    """The campaign's earliest `units` FAILs (in its order: a drawn pre-queue's first) become SUCCESS (fewer if it
    has fewer), each with its claim window when the campaign needs claims; how many did. The caller holds the
    campaign's row lock and fixes its counters."""
    if units <= 0:
        return 0
    drawn = conn.exec_driver_sql(
        "SELECT pre_queue_order = 'DRAW' AND drawn_at IS NOT NULL FROM campaign WHERE id = %s", (campaign_id,)
    ).scalar()
    ids = [i for (i,) in conn.exec_driver_sql(DRAWN_FAILS if drawn else EARLIEST_FAILS, (campaign_id, units))]
    for start in range(0, len(ids), 10_000):
        chunk = ids[start : start + 10_000]
        conn.exec_driver_sql(PROMOTE.format(placeholders(len(chunk))), (now, *chunk))
    if ids and claim_seconds:
        open_claims(conn, column="id", keys=ids, now=now, claim_seconds=claim_seconds, promoted=True)
    return len(ids)


def count_second(conn: Connection, campaign_id: int, now: dt.datetime, wins: int, fails: int, stock: int) -> None:
    """Promotions and releases on the campaign's per-second curves (`wins`/`fails`: the change in this second)."""
    conn.exec_driver_sql(PER_SECOND, (campaign_id, now.replace(microsecond=0), wins, fails, stock))


@dataclass(frozen=True)
class Released:
    campaign_id: int
    released: int  # wins released
    promoted: int  # of their units, gone to the earliest FAILs
    restocked: int  # back to the stock (no FAIL left)


def release_campaign(
    engine: Engine, campaign_id: int, now: dt.datetime, *, chunk: int = CHUNK, hold_s: float = 0.0
) -> Released:
    """Release up to `chunk` of the campaign's wins past their deadline, in one transaction: each becomes RELEASED,
    its unit goes to the earliest FAIL (promoted) or back to the stock. `hold_s` keeps the transaction open that
    long between the release and the promotion (fault tests kill the process there)."""
    with engine.begin() as conn:
        row = conn.exec_driver_sql(
            "SELECT current_stock, claim_seconds FROM campaign WHERE id = %s FOR UPDATE", (campaign_id,)
        ).one()
        due = [h for (h,) in conn.exec_driver_sql(DUE_IN, (campaign_id, now, chunk))]
        if not due:
            return Released(campaign_id, 0, 0, 0)
        marks = placeholders(len(due))
        conn.exec_driver_sql(
            f"UPDATE claim SET released_at = %s, changed_at = %s WHERE history_id IN ({marks})", (now, now, *due)
        )
        conn.exec_driver_sql(
            f"UPDATE participation_history SET status = 'RELEASED' WHERE id IN ({marks}) AND status = 'SUCCESS'",
            tuple(due),
        )
        if hold_s:
            time.sleep(hold_s)
        promoted = promote(conn, campaign_id, len(due), now, int(row.claim_seconds))
        back = len(due) - promoted
        stock = int(row.current_stock) + back
        conn.exec_driver_sql(
            "UPDATE campaign SET current_stock = %s, success_count = success_count - %s, fail_count = fail_count - %s,"
            " released_count = released_count + %s, sold_out_at = IF(%s > 0, NULL, sold_out_at) WHERE id = %s",
            (stock, back, promoted, len(due), stock, campaign_id),
        )
        count_second(conn, campaign_id, now, -back, -promoted, stock)
    return Released(campaign_id, len(due), promoted, back)


def due_campaigns(engine: Engine, now: dt.datetime) -> list[int]:
    with engine.connect() as conn:
        return sorted(int(c) for (c,) in conn.exec_driver_sql(DUE, (now,)))


class ClaimRefused(Exception):
    """Why a claim is refused: `code` NOT_A_WINNER, CLAIM_EXPIRED or CLAIM_NOT_NEEDED; `status` the request's."""

    def __init__(self, code: str, status: str) -> None:
        super().__init__(code)
        self.code = code
        self.status = status


@dataclass(frozen=True)
class Claimed:
    deadline: dt.datetime
    claimed_at: dt.datetime
    promoted: bool
    again: bool  # it was claimed already (the same answer)


def claim(engine: Engine, *, campaign_id: int, request_id: str, now: dt.datetime) -> Claimed:
    """Claim the win of `request_id` (the caller checked whose it is): locks its claim row only. Raises
    ClaimRefused (the request PENDING, FAIL or DUPLICATE; released or past its deadline; no claim needed)."""
    with engine.begin() as conn:
        row = conn.exec_driver_sql(
            "SELECT deadline, claimed_at, released_at, promoted FROM claim WHERE request_id = %s AND campaign_id = %s "
            "FOR UPDATE",
            (request_id, campaign_id),
        ).first()
        if row is None:
            status = conn.exec_driver_sql(
                "SELECT h.status, c.claim_seconds FROM participation_history h JOIN campaign c ON c.id = h.campaign_id"
                " WHERE h.request_id = %s AND h.campaign_id = %s",
                (request_id, campaign_id),
            ).first()
            if status is None:
                raise ClaimRefused("NOT_A_WINNER", "PENDING")
            if status.status == "SUCCESS" and not status.claim_seconds:
                raise ClaimRefused("CLAIM_NOT_NEEDED", "SUCCESS")
            raise ClaimRefused("NOT_A_WINNER", status.status)
        if row.claimed_at is not None:
            return Claimed(row.deadline, row.claimed_at, bool(row.promoted), again=True)
        if row.released_at is not None:
            raise ClaimRefused("CLAIM_EXPIRED", "RELEASED")
        if row.deadline <= now:
            raise ClaimRefused("CLAIM_EXPIRED", "SUCCESS")  # (released within a second)
        conn.exec_driver_sql(
            "UPDATE claim SET claimed_at = %s, changed_at = %s WHERE request_id = %s", (now, now, request_id)
        )
        return Claimed(row.deadline, now, bool(row.promoted), again=False)
