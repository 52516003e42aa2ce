"""The crowd's schedule, its tally and when a run counts as lost: pure logic."""

from __future__ import annotations

import datetime as dt
import statistics
from collections import Counter
from types import SimpleNamespace

import pytest

from crowd.plan import Plan
from crowd.runner import NO_ANSWER, Crowd, Door, Tally, percentiles
from fcfs.crowd_runs import ALIVE_WITHIN, MAX_USERS, RunStatus, is_loopback, status_of
from fcfs.simulated import SimulationProofs


def test_every_user_clicks_once_and_the_repeats_come_after_their_first_click() -> None:
    plan = Plan(users=5000, seconds=20, repeat_share=0.2, first_user_id=1000)
    clicks = plan.clicks(seed=3)
    assert len(clicks) == plan.clicks_total == 5000 + 1250
    assert [c.at_s for c in clicks] == sorted(c.at_s for c in clicks)
    assert all(0 <= c.at_s <= 20 for c in clicks)
    firsts = {c.user_id: c.at_s for c in clicks if not c.repeat}
    assert sorted(firsts) == list(range(1000, 6000))
    repeats = [c for c in clicks if c.repeat]
    assert len(repeats) == 1250 and sum(c.repeat for c in clicks) / len(clicks) == pytest.approx(0.2, abs=0.001)
    assert all(c.at_s >= firsts[c.user_id] for c in repeats)
    assert clicks == plan.clicks(seed=3) and clicks != plan.clicks(seed=4)


def test_flat_spreads_the_users_evenly_and_a_rush_crowds_the_opening() -> None:
    flat = [c.at_s for c in Plan(20_000, 10, 0).clicks()]
    per_second = Counter(int(at) for at in flat)
    assert min(per_second.values()) > 1700 and max(per_second.values()) < 2300
    rush = [c.at_s for c in Plan(20_000, 10, 0, "rush").clicks()]
    assert statistics.median(rush) < 2.0  # a quarter of the run on average, cut at its end: median ~1.7 s
    assert sum(at < 1 for at in rush) > 4 * sum(at >= 9 for at in rush)
    assert max(rush) <= 10


@pytest.mark.parametrize(
    "wrong",
    [
        {"users": 0},
        {"users": MAX_USERS + 1},
        {"seconds": 0},
        {"seconds": 601},
        {"repeat_share": -0.1},
        {"repeat_share": 0.51},
        {"shape": "spiky"},
        {"first_user_id": 0},
    ],
)
def test_a_crowd_is_bounded(wrong: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        Plan(**{"users": 10, "seconds": 1.0, **wrong})  # type: ignore[arg-type]


def test_the_tally_counts_every_answer_and_keeps_the_second_apart() -> None:
    tally = Tally()
    for i in range(100):
        tally.sent()
        tally.answer("202", True, float(i + 1))
    tally.sent()
    tally.answer("429 RATE_LIMITED", False, 500.0)
    tally.sent()
    tally.answer(NO_ANSWER, False, None)
    first = tally.report()
    assert (first.sent, first.accepted, first.refused, first.failed) == (102, 100, 1, 1)
    assert first.answers == {"202": 100, "429 RATE_LIMITED": 1, NO_ANSWER: 1}
    assert first.second.sent == 102 and first.overall == first.second_percentiles
    assert first.overall.max == 500.0 and 50 <= (first.overall.p50 or 0) <= 52
    tally.sent()
    tally.answer("202", True, 7.0)
    second = tally.report()
    assert (second.sent, second.accepted, second.second.sent, second.second.accepted) == (103, 101, 1, 1)
    assert second.second_percentiles.p99 == 7.0 and second.overall.max == 500.0
    assert tally.report().second_percentiles.p50 is None  # a second without answers


def test_percentiles_are_numpys() -> None:
    values = [float(v) for v in range(1, 1001)]
    assert percentiles(values) == (500.5, 950.05, 990.01, 1000.0)
    assert percentiles([]) == (None, None, None, None)


def test_only_this_machine_is_loopback() -> None:
    assert is_loopback("http://127.0.0.1:8000") and is_loopback("http://localhost:8000/x")
    assert is_loopback("http://[::1]:8000") and is_loopback("http://127.9.9.9")
    assert not is_loopback("http://10.0.0.1:8000") and not is_loopback("https://example.com")
    assert not is_loopback("http://api:8000") and not is_loopback("not a url")


def test_a_run_whose_process_went_silent_is_lost() -> None:
    now = dt.datetime(2026, 1, 1, 12)
    fresh, silent = now - ALIVE_WITHIN / 2, now - ALIVE_WITHIN

    def row(status: str, at: dt.datetime) -> SimpleNamespace:
        return SimpleNamespace(status=status, heartbeat_at=at)

    assert status_of(row("RUNNING", fresh), now) is RunStatus.RUNNING  # type: ignore[arg-type]
    assert status_of(row("RUNNING", silent), now) is RunStatus.LOST  # type: ignore[arg-type]
    assert status_of(row("STARTING", silent), now) is RunStatus.LOST  # type: ignore[arg-type]
    assert status_of(row("FINISHED", silent), now) is RunStatus.FINISHED  # type: ignore[arg-type]
    assert status_of(row("STOPPED", silent), now) is RunStatus.STOPPED  # type: ignore[arg-type]


def test_the_waiting_share_of_users_is_spread_evenly() -> None:
    door = Door("http://127.0.0.1:1/api/campaigns/1/participation", 202, SimulationProofs("k"))
    for share in (0.0, 0.3, 1.0):
        crowd = Crowd(door, [], 1, Tally(), wait_share=share)
        waiting = sum(crowd.waits(u) for u in range(2**52, 2**52 + 20_000))
        assert abs(waiting / 20_000 - share) < 0.02, (share, waiting)
    accepted = {"requestId": "r.s", "partition": 2, "offset": 41, "userId": 9}
    assert door.lookup(accepted, 25) == f"{door.url}/r.s?partition=2&offset=41&waitSeconds=25"
