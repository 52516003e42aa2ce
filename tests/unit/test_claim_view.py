"""A win's claim as the look-up tells it, and the claim window as the participant page says it."""

from __future__ import annotations

import datetime as dt

import pytest

from backend.door.decisions import Decided
from backend.routes.page import _span
from fcfs.claims import ClaimView, utc_text

WON = dt.datetime(2026, 12, 1, 20, 0, 0, 123_456)
DEADLINE = WON + dt.timedelta(seconds=600)


def test_times_are_utc_to_the_millisecond() -> None:
    assert utc_text(WON) == "2026-12-01T20:00:00.123Z"
    assert utc_text(dt.datetime(2026, 1, 2, 3, 4, 5)) == "2026-01-02T03:04:05.000Z"


@pytest.mark.parametrize(
    ("claimed", "released", "state"),
    [(None, None, "UNCLAIMED"), (WON, None, "CLAIMED"), (None, DEADLINE, "RELEASED")],
)
def test_a_claims_state_follows_its_row(claimed: dt.datetime | None, released: dt.datetime | None, state: str) -> None:
    view = ClaimView.of(DEADLINE, claimed, released, 0)
    assert view.state == state
    assert view.json() == {
        "state": state,
        "deadline": "2026-12-01T20:10:00.123Z",
        "claimedAt": claimed and utc_text(claimed),
    }


def test_a_decision_takes_its_claims_status() -> None:
    failed = Decided(7, 42, "FAIL", 5, 3, 0, 9)
    promoted = failed.claimed(ClaimView.of(DEADLINE, None, None, 1))
    assert promoted.status == "SUCCESS" and promoted.promoted and promoted.answer("r")["claim"]["state"] == "UNCLAIMED"
    released = promoted.claimed(ClaimView.of(DEADLINE, None, DEADLINE, 1))
    assert released.status == "RELEASED" and released.promoted  # (promoted once: it stays said)
    assert "claim" not in failed.answer("r")  # a campaign whose winners need not claim: no claim in the answer


@pytest.mark.parametrize(
    ("seconds", "said"),
    [(90, "90 s"), (60, "1 minute"), (300, "5 minutes"), (3600, "1 hour"), (7200, "2 hours"), (86_400 * 3, "3 days")],
)
def test_the_claim_window_as_people_say_it(seconds: int, said: str) -> None:
    assert _span(seconds) == said
