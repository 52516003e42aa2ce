"""The Live page's curves: a stall is drawn as a flat stretch of zero-decision seconds."""

from __future__ import annotations

from typing import Any

from dashboard.series import LIVE_GAP_S, sold_out_second, spans, stalled_seconds, zero_filled


def point(ts: int, success: int, total: int, stock: int) -> dict[str, Any]:
    return {
        "ts": ts,
        "success": success,
        "fail": 0,
        "duplicate": 0,
        "cumulativeSuccess": total,
        "cumulativeFail": 0,
        "cumulativeDuplicate": 0,
        "stockLeft": stock,
    }


def test_missing_seconds_are_zeros_with_the_totals_carried_over() -> None:
    points = [point(100, 5, 5, 95), point(104, 3, 8, 92)]
    filled = zero_filled(points, now_s=104)
    assert [p["ts"] for p in filled] == [100, 101, 102, 103, 104]
    assert [p["success"] for p in filled] == [5, 0, 0, 0, 3]
    assert [p["cumulativeSuccess"] for p in filled] == [5, 5, 5, 5, 8]
    assert [p["stockLeft"] for p in filled] == [95, 95, 95, 95, 92]


def test_a_stall_in_progress_runs_flat_up_to_now_and_an_old_event_stops_at_its_end() -> None:
    points = [point(100, 5, 5, 95)]
    assert [p["ts"] for p in zero_filled(points, now_s=103)] == [100, 101, 102, 103]
    assert zero_filled(points, now_s=100 + LIVE_GAP_S + 1) == points
    assert zero_filled([], now_s=5) == []


def test_intake_is_filled_with_its_own_counts() -> None:
    intake = [
        {"ts": 10, "accepted": 4, "unavailable": 0, "limited": 1},
        {"ts": 12, "accepted": 0, "unavailable": 3, "limited": 0},
    ]
    filled = zero_filled(intake, 12, counts=("accepted", "unavailable", "limited"))
    assert [(p["ts"], p["accepted"], p["unavailable"]) for p in filled] == [(10, 4, 0), (11, 0, 0), (12, 0, 3)]


def test_stalls_are_stretches_of_lag_without_progress() -> None:
    samples = [{"ts": t, "lag": 5, "committedOffset": 100 if t < 2 else 101} for t in range(0, 9)]  # moved at 2
    samples += [{"ts": 9, "lag": 0, "committedOffset": 105}]
    assert stalled_seconds(samples) == [7, 8]  # 5 s after the last move
    assert spans([3, 4, 5, 9, 11, 12]) == [(3, 5), (9, 9), (11, 12)]


def test_the_sold_out_second_is_the_first_with_no_stock() -> None:
    assert sold_out_second([point(1, 1, 1, 1), point(2, 1, 2, 0), point(3, 0, 2, 0)]) == 2
    assert sold_out_second([point(1, 1, 1, 1)]) is None
