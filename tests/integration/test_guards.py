"""The invariants' last line of defence, tried directly: rows that break I1, I3 or I4 written straight into the
real database, past every check in the code, must be refused by the database itself."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Connection, Engine, insert, select, update
from sqlalchemy.exc import DBAPIError

from fcfs.db import utcnow
from fcfs.schema import Channel, Outcome, campaign, participation_history


@pytest.fixture
def conn(database: Engine) -> Iterator[Connection]:
    """A transaction of the test's own, rolled back at the end: nothing it writes stays."""
    with database.connect() as connection:
        transaction = connection.begin()
        try:
            yield connection
        finally:
            transaction.rollback()


def _campaign(conn: Connection, total: int = 2, current: int = 2, winners: int = 0) -> int:
    created = conn.execute(
        insert(campaign).values(
            name="guard", total_stock=total, current_stock=current, success_count=winners, created_at=utcnow()
        )
    )
    return int(created.lastrowid)


def _row(campaign_id: int, request_id: str, user_id: int, status: Outcome = Outcome.FAIL) -> dict[str, Any]:
    now = utcnow()
    return {
        "request_id": request_id,
        "campaign_id": campaign_id,
        "user_id": user_id,
        "status": status,
        "channel": Channel.KAFKA,
        "requested_at": now,
        "decided_at": now,
    }


def _refused(conn: Connection, statement: Any, constraint: str) -> None:
    """`statement` is refused, and the refusal names `constraint` (not some other error)."""
    savepoint = conn.begin_nested()
    with pytest.raises(DBAPIError) as refusal:
        conn.execute(statement)
    savepoint.rollback()
    assert constraint in str(refusal.value.orig), refusal.value.orig


@pytest.mark.parametrize(
    ("total", "current", "winners"),
    [(2, -1, 3), (2, 3, -1)],
    ids=["stock-below-zero", "stock-above-total"],
)
def test_i1_stock_out_of_range_is_refused(conn: Connection, total: int, current: int, winners: int) -> None:
    values = {"name": "x", "total_stock": total, "current_stock": current, "success_count": winners}
    _refused(conn, insert(campaign).values(**values, created_at=utcnow()), "ck_campaign_stock_range")


def test_i1_a_sale_past_the_last_unit_is_refused(conn: Connection) -> None:
    """The worker's update as a buggy one would write it: one more winner with no stock left."""
    sold_out = _campaign(conn, total=1, current=0, winners=1)
    oversell = (
        update(campaign)
        .where(campaign.c.id == sold_out)
        .values(current_stock=campaign.c.current_stock - 1, success_count=campaign.c.success_count + 1)
    )
    _refused(conn, oversell, "ck_campaign_stock_range")
    assert conn.scalar(select(campaign.c.current_stock).where(campaign.c.id == sold_out)) == 0


def test_i1_winners_that_do_not_match_the_stock_are_refused(conn: Connection) -> None:
    campaign_id = _campaign(conn)
    one_more_winner = update(campaign).where(campaign.c.id == campaign_id).values(success_count=1)  # stock untouched
    _refused(conn, one_more_winner, "ck_campaign_winners_match_stock")
    _refused(
        conn,
        insert(campaign).values(name="x", total_stock=5, current_stock=5, success_count=2, created_at=utcnow()),
        "ck_campaign_winners_match_stock",
    )


@pytest.mark.parametrize(
    ("first", "second"),
    [(Outcome.SUCCESS, Outcome.SUCCESS), (Outcome.SUCCESS, Outcome.FAIL), (Outcome.FAIL, Outcome.SUCCESS)],
)
def test_i3_a_second_first_attempt_of_a_user_is_refused(conn: Connection, first: Outcome, second: Outcome) -> None:
    campaign_id = _campaign(conn)
    conn.execute(insert(participation_history).values(_row(campaign_id, "guard-i3-1", 7, first)))
    again = insert(participation_history).values(_row(campaign_id, "guard-i3-2", 7, second))
    _refused(conn, again, "uq_history_one_attempt_per_user")


def test_i3_repeats_recorded_as_duplicates_are_allowed(conn: Connection) -> None:
    """The constraint is no broader than I3: a user's repeats (DUPLICATE) are recorded, in any number."""
    campaign_id = _campaign(conn)
    rows = [_row(campaign_id, "guard-dup-0", 7, Outcome.SUCCESS)]
    rows += [_row(campaign_id, f"guard-dup-{n}", 7, Outcome.DUPLICATE) for n in (1, 2, 3)]
    conn.execute(insert(participation_history), rows)
    other = _campaign(conn)  # and the same user once in another campaign
    conn.execute(insert(participation_history).values(_row(other, "guard-dup-4", 7, Outcome.SUCCESS)))
    h = participation_history.c
    recorded = conn.execute(
        select(h.campaign_id, h.status).where(h.user_id == 7, h.campaign_id.in_([campaign_id, other]))
    )
    assert sorted((c == other, s.value) for c, s in recorded) == [
        (False, "DUPLICATE"),
        (False, "DUPLICATE"),
        (False, "DUPLICATE"),
        (False, "SUCCESS"),
        (True, "SUCCESS"),
    ]


def test_i4_a_request_id_recorded_twice_is_refused(conn: Connection) -> None:
    campaign_id, other = _campaign(conn), _campaign(conn)
    conn.execute(insert(participation_history).values(_row(campaign_id, "guard-rid", 1)))
    for target, user, status in ((campaign_id, 2, Outcome.FAIL), (other, 1, Outcome.DUPLICATE)):
        again = insert(participation_history).values(_row(target, "guard-rid", user, status))
        _refused(conn, again, "uq_history_request_id")


def test_i4_request_ids_differing_in_case_or_trailing_space_are_different_ids(conn: Connection) -> None:
    """A binary, no-pad collation: the database's "same id" is byte for byte, as the worker's is."""
    campaign_id = _campaign(conn, total=10, current=10)
    ids = ["guard-a", "guard-A", "guard-a ", "guard-a  ", "guard-á"]
    conn.execute(insert(participation_history), [_row(campaign_id, rid, n) for n, rid in enumerate(ids, 1)])
    for rid in ids:
        found = conn.scalars(
            select(participation_history.c.request_id).where(participation_history.c.request_id == rid)
        )
        assert list(found) == [rid]  # each id finds itself only
    _refused(conn, insert(participation_history).values(_row(campaign_id, "guard-a ", 99)), "uq_history_request_id")
