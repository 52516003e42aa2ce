"""Pure helpers that turn the API's per-second points into the curves the Live page draws."""

from __future__ import annotations

from typing import Any

COUNTS = ("success", "fail", "duplicate")
LIVE_GAP_S = 600  # a silence shorter than this, up to now, is drawn as a stall; a longer one is an event over
# Seconds already shown can still change: a worker's batch or an API process's per-second counts may be
# written seconds late (a busy machine), and after a database outage much later. Each poll asks again for
# the last REFETCH_S seconds, and every FULL_RELOAD_S for everything (an hour of points: a few ms).
REFETCH_S = 60
FULL_RELOAD_S = 30


def zero_filled(points: list[dict[str, Any]], now_s: int, counts: tuple[str, ...] = COUNTS) -> list[dict[str, Any]]:
    """Every second from the first point on, the seconds without decisions as zeros with the totals and the
    stock carried over — so a stall is a flat stretch, not a straight line drawn over it. Filled up to
    `now_s` while the last decision is recent (a stall in progress), else up to the last point."""
    if not points:
        return []
    last = points[-1]["ts"]
    until = now_s if 0 <= now_s - last <= LIVE_GAP_S else last
    by_second = {p["ts"]: p for p in points}
    filled = []
    previous = points[0]
    for second in range(points[0]["ts"], until + 1):
        point = by_second.get(second)
        if point is None:
            point = {**previous, "ts": second, **dict.fromkeys(counts, 0)}
        filled.append(point)
        previous = point
    return filled


def spans(seconds: list[int]) -> list[tuple[int, int]]:
    """Consecutive seconds merged into (first, last) stretches."""
    out: list[tuple[int, int]] = []
    for second in sorted(set(seconds)):
        if out and second == out[-1][1] + 1:
            out[-1] = (out[-1][0], second)
        else:
            out.append((second, second))
    return out


def stalled_seconds(samples: list[dict[str, Any]], after_s: int = 5) -> list[int]:
    """The seconds a partition was stalled: lag above zero and its committed offset unmoved for `after_s`
    seconds or more (the lag status's STALLED, from the stored samples, so past stalls show too)."""
    stalled = []
    since: int | None = None
    previous: dict[str, Any] | None = None
    for sample in samples:
        moving = previous is None or sample["committedOffset"] != previous["committedOffset"]
        if sample["lag"] <= 0 or moving:
            since = sample["ts"]
        elif since is not None and sample["ts"] - since >= after_s:
            stalled.append(sample["ts"])
        previous = sample
    return stalled


def sold_out_second(points: list[dict[str, Any]]) -> int | None:
    """The second the last item went."""
    return next((p["ts"] for p in points if p["stockLeft"] == 0), None)
