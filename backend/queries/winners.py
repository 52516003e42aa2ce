"""After the event: the winners in decision order (to ship the prizes), and one user's requests (to answer
"I clicked at 10:00:01 and did not win").

Decision order is the order of `(decided_at, id)`: a batch's rows share `decided_at` and are inserted in
log order, and the index `(campaign_id, decided_at)` holds them in exactly that order (InnoDB appends the
primary key), so paging walks the index and never sorts. Every winner is decided no later than the
sell-out, so the walk stops there instead of reading the campaign's failed requests after it — unless a FAIL
was promoted (stock added, a win released): a promoted winner keeps its place, decided after the sell-out.
"""

from __future__ import annotations

import base64
import csv
import datetime as dt
import io
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, Engine, Row, and_, func, or_, select

from backend.contract.presenters import iso
from fcfs.epoch import epoch_us, from_epoch_us
from fcfs.schema import Outcome, campaign, campaign_switch, claim, participation_history
from fcfs.simulated import is_simulated

h = participation_history.c
CSV_COLUMNS = [
    "position",
    "userId",
    "requestId",
    "decidedAt",
    "kafkaPartition",
    "kafkaOffset",
    "simulated",
    "claimedAt",  # a campaign whose winners must claim: when this one did (empty: not yet)
    "promoted",  # won later: a unit released by a winner who did not claim it, or stock added
]


@dataclass(frozen=True)
class Cursor:
    """Where a page of winners starts: after the row (decided_at, id), whose position was `position`."""

    decided_at: dt.datetime
    row_id: int
    position: int

    def encode(self) -> str:
        micros = epoch_us(self.decided_at)
        return base64.urlsafe_b64encode(f"{micros}.{self.row_id}.{self.position}".encode()).decode().rstrip("=")

    @classmethod
    def decode(cls, text: str) -> Cursor:
        """The cursor a previous page returned; ValueError for anything else."""
        try:
            raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode("ascii")
            micros, row_id, position = (int(part) for part in raw.split("."))
        except (ValueError, UnicodeDecodeError) as exc:
            raise ValueError("not a cursor this API returned") from exc
        if min(micros, row_id, position) < 0 or micros > 253_402_300_799_999_999:
            raise ValueError("not a cursor this API returned")
        return cls(from_epoch_us(micros), row_id, position)


def winners_decided_by(conn: Connection, campaign_id: int) -> dt.datetime | None:
    """When the campaign's last winner was decided at the latest: its sell-out, if none of its FAILs was ever
    promoted (None: not known — not sold out, or a promoted winner may come after it)."""
    row = conn.execute(
        select(campaign.c.sold_out_at, campaign.c.released_count).where(campaign.c.id == campaign_id)
    ).first()
    if row is None or row.sold_out_at is None or row.released_count:
        return None
    promoted = conn.scalar(
        select(func.count())
        .select_from(campaign_switch)
        .where(campaign_switch.c.campaign_id == campaign_id, campaign_switch.c.promoted > 0)
    )
    return None if promoted else row.sold_out_at


def winners_page(
    engine: Engine, *, campaign_id: int, after: Cursor | None, limit: int
) -> tuple[list[Any], int, Cursor | None]:
    """Up to `limit` winners after the cursor, in decision order: (rows, position of the first, next cursor)."""
    with engine.connect() as conn:
        return _winners_page(conn, campaign_id, after, limit)


def _winners_page(
    conn: Connection, campaign_id: int, after: Cursor | None, limit: int
) -> tuple[list[Any], int, Cursor | None]:
    """Up to `limit` winners after the cursor, in decision order: (rows, position of the first, next cursor)."""
    sold_out_at = winners_decided_by(conn, campaign_id)
    query = (
        select(
            h.id,
            h.user_id,
            h.request_id,
            h.decided_at,
            h.kafka_partition,
            h.kafka_offset,
            claim.c.claimed_at,
            h.promoted_at,
        )
        .select_from(participation_history.outerjoin(claim, claim.c.history_id == h.id))
        .where(h.campaign_id == campaign_id, h.status == Outcome.SUCCESS)
        .order_by(h.decided_at, h.id)
        .limit(limit)
    )
    if sold_out_at is not None:
        query = query.where(h.decided_at <= sold_out_at)
    if after is not None:
        query = query.where(
            or_(h.decided_at > after.decided_at, and_(h.decided_at == after.decided_at, h.id > after.row_id))
        )
    rows = list(conn.execute(query).all())
    first = (after.position if after else 0) + 1
    following = None
    if len(rows) == limit:
        last = rows[-1]
        following = Cursor(last.decided_at, last.id, first + len(rows) - 1)
    return rows, first, following


FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(cell: str) -> str:
    """A text cell a spreadsheet would read as a formula (`=`, `+`, `-`, `@`, tab, CR first) prefixed with `'`,
    as OWASP advises: every request id starts with `-` (its timestamp's high bits are 0). Strip one leading
    `'` to get the value."""
    return "'" + cell if cell.startswith(FORMULA_STARTS) else cell


def winners_csv(engine: Engine, campaign_id: int, tz: ZoneInfo, chunk: int = 10_000) -> Iterator[bytes]:
    """The winners as CSV, in decision order, a page at a time: memory stays bounded by one page."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    cursor: Cursor | None = None
    while True:
        with engine.connect() as conn:  # one short read per page: no transaction held over the download
            rows, first, cursor = _winners_page(conn, campaign_id, cursor, chunk)
        for position, row in enumerate(rows, start=first):
            writer.writerow(
                [
                    position,
                    row.user_id,
                    spreadsheet_safe(row.request_id),
                    iso(row.decided_at, tz),
                    row.kafka_partition,
                    row.kafka_offset,
                    "true" if is_simulated(row.user_id) else "false",
                    iso(row.claimed_at, tz) or "",
                    "true" if row.promoted_at is not None else "false",
                ]
            )
        yield out.getvalue().encode()
        out.seek(0)
        out.truncate()
        if cursor is None:
            return


def user_requests(engine: Engine, *, campaign_id: int, user_id: int) -> list[tuple[Row[Any], int]]:
    """Every decided request of a user in a campaign, in decision order, with the winners decided before it."""
    with engine.connect() as conn:
        return _user_requests(conn, campaign_id, user_id)


def _user_requests(conn: Connection, campaign_id: int, user_id: int) -> list[tuple[Row[Any], int]]:
    c = conn.execute(select(campaign.c.success_count).where(campaign.c.id == campaign_id)).one()
    decided_by = winners_decided_by(conn, campaign_id)
    rows = conn.execute(
        select(participation_history)
        .where(h.campaign_id == campaign_id, h.user_id == user_id)
        .order_by(h.decided_at, h.id)
    ).all()
    answers = []
    for row in rows:
        if decided_by is not None and row.decided_at > decided_by:
            before = int(c.success_count)  # decided after the last winner: every winner came before
        else:
            before = int(
                conn.scalar(
                    select(func.count())
                    .select_from(participation_history)
                    .where(
                        h.campaign_id == campaign_id,
                        h.status == Outcome.SUCCESS,
                        or_(h.decided_at < row.decided_at, and_(h.decided_at == row.decided_at, h.id < row.id)),
                    )
                )
                or 0
            )
        answers.append((row, before))
    return answers
