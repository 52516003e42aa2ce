"""The Burrow-style verdict on a partition's recent lag samples."""

from __future__ import annotations

from backend.queries.timeline import lag_status


def samples(*points: tuple[int, int]) -> list[dict[str, int]]:
    return [
        {"ts": i, "endOffset": end, "committedOffset": done, "lag": end - done} for i, (end, done) in enumerate(points)
    ]


def test_no_lag_is_ok() -> None:
    assert lag_status(samples((10, 5), (20, 20))) == "OK"


def test_moving_consumer_that_keeps_up_is_ok() -> None:
    assert lag_status(samples((100, 10), (150, 80), (200, 170))) == "OK"


def test_growing_lag_with_a_moving_consumer_warns() -> None:
    assert lag_status(samples((100, 90), (200, 120), (300, 150))) == "WARN"


def test_lag_without_progress_is_stalled() -> None:
    assert lag_status(samples((100, 40), (120, 40), (130, 40))) == "STALLED"


def test_too_few_samples_to_judge_progress() -> None:
    assert lag_status(samples((100, 40), (120, 40))) == "OK"
    assert lag_status([]) == "UNKNOWN"
