"""What each operator's switch changes on a campaign row, and what it refuses (backend/queries/switches.py)."""

from __future__ import annotations

import datetime as dt
from types import SimpleNamespace

import pytest

from backend.queries.switches import SwitchRefused, planned
from fcfs.schema import SwitchAction

NOW = dt.datetime(2026, 12, 1, 12, 0)
HOUR = dt.timedelta(hours=1)


def row(paused: bool = False, starts_at: dt.datetime | None = None, ends_at: dt.datetime | None = None) -> object:
    return SimpleNamespace(paused=paused, starts_at=starts_at, ends_at=ends_at)


def test_pause_and_resume_change_only_what_is_not_so_already() -> None:
    assert planned(SwitchAction.PAUSE, row(), NOW, None) == {"paused": True}
    assert planned(SwitchAction.PAUSE, row(paused=True), NOW, None) == {}
    assert planned(SwitchAction.RESUME, row(paused=True), NOW, None) == {"paused": False}
    assert planned(SwitchAction.RESUME, row(), NOW, None) == {}


def test_end_now_ends_an_open_campaign_and_one_not_yet_open_but_not_an_ended_one() -> None:
    assert planned(SwitchAction.END, row(), NOW, None) == {"ends_at": NOW}
    assert planned(SwitchAction.END, row(ends_at=NOW + HOUR), NOW, None) == {"ends_at": NOW}
    assert planned(SwitchAction.END, row(starts_at=NOW + HOUR), NOW, None) == {"ends_at": NOW, "starts_at": NOW}
    assert planned(SwitchAction.END, row(ends_at=NOW - HOUR), NOW, None) == {}
    assert planned(SwitchAction.END, row(ends_at=NOW), NOW, None) == {}  # the end is exclusive: ended at NOW


def test_moving_the_end_needs_it_after_the_start_and_may_remove_it() -> None:
    assert planned(SwitchAction.MOVE_END, row(ends_at=NOW), NOW, NOW + HOUR) == {"ends_at": NOW + HOUR}
    assert planned(SwitchAction.MOVE_END, row(ends_at=NOW), NOW, None) == {"ends_at": None}
    assert planned(SwitchAction.MOVE_END, row(ends_at=NOW), NOW, NOW) == {}
    assert planned(SwitchAction.MOVE_END, row(ends_at=NOW + HOUR), NOW, NOW - HOUR) == {
        "ends_at": NOW
    }  # not before now
    assert planned(SwitchAction.MOVE_END, row(ends_at=NOW - HOUR), NOW, NOW - 2 * HOUR) == {}  # ended already
    assert planned(SwitchAction.MOVE_END, row(starts_at=NOW), NOW, NOW + HOUR) == {"ends_at": NOW + HOUR}
    with pytest.raises(SwitchRefused):
        planned(SwitchAction.MOVE_END, row(starts_at=NOW), NOW, NOW)
