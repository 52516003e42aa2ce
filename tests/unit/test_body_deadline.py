"""The body deadline's bookkeeping: slow bodies counted per client, cut at their deadline, shorter under attack."""

from __future__ import annotations

import asyncio

import pytest

from backend.app.errors import ApiError
from backend.door import body_deadline
from backend.door.body_deadline import PRESSED_S, BodyDeadlines


def test_a_burst_of_quick_bodies_never_counts_and_slow_ones_do() -> None:
    asyncio.run(_burst_then_slow())


async def _burst_then_slow() -> None:
    bodies = BodyDeadlines(seconds=2.0, per_client=3)
    quick = [bodies.begin("1.2.3.4") for _ in range(100)]  # a burst from one address, all read at once
    for read in quick:
        bodies.end(read)
    bodies.sweep(quick[-1].started)
    assert bodies.slow == 0
    slow = [bodies.begin("1.2.3.4") for _ in range(3)]
    bodies.sweep(slow[-1].started + 0.15)  # a sweep since they began ...
    assert bodies.slow == 0
    bodies.sweep(slow[-1].started + 0.4)  # ... and another, still arriving: slow
    assert bodies.slow == 3
    with pytest.raises(ApiError) as refused:
        bodies.begin("1.2.3.4")
    assert refused.value.status_code == 429 and refused.value.headers == {"Retry-After": "1", "Connection": "close"}
    bodies.begin("5.6.7.8")  # another client is not held up
    bodies.end(slow[0])
    bodies.begin("1.2.3.4")  # one finished: room for one more


def test_slow_bodies_are_cut_at_their_deadline_and_sooner_under_pressure(monkeypatch: pytest.MonkeyPatch) -> None:
    asyncio.run(_cut(monkeypatch))


async def _cut(monkeypatch: pytest.MonkeyPatch) -> None:
    bodies = BodyDeadlines(seconds=2.0, per_client=10_000)
    cancelled: list[int] = []

    class Task:
        def __init__(self, n: int) -> None:
            self.n = n

        def cancel(self) -> None:
            cancelled.append(self.n)

        def uncancel(self) -> int:
            return 0

    reads = []
    for n in range(5):
        read = bodies.begin(f"10.0.0.{n}")
        read.task = Task(n)  # type: ignore[assignment]
        reads.append(read)
    t0 = reads[0].started
    bodies.sweep(t0 + 0.25)  # the first sweep since they began: not yet slow (the loop may not have run)
    assert bodies.slow == 0
    bodies.sweep(t0 + 0.5)
    assert cancelled == [] and bodies.slow == 5
    bodies.sweep(t0 + 2.1)
    assert cancelled == [0, 1, 2, 3, 4] and all(bodies.expired(r) for r in reads) and bodies.slow == 0
    monkeypatch.setattr(body_deadline, "PRESSURE", 3)  # more slow bodies than that: an attack
    pressed = []
    for n in range(5):
        read = bodies.begin(f"10.1.0.{n}")
        read.task = Task(10 + n)  # type: ignore[assignment]
        pressed.append(read)
    start = pressed[0].started
    bodies.sweep(start + 0.2)
    bodies.sweep(start + 0.3)
    assert cancelled == [0, 1, 2, 3, 4] and bodies.slow == 5
    bodies.sweep(start + PRESSED_S + 0.01)
    assert cancelled[5:] == [10, 11, 12, 13, 14]


def test_registering_needs_a_running_loop_for_its_sweeper() -> None:
    async def one() -> int:
        bodies = BodyDeadlines(seconds=1.0, per_client=1)
        read = bodies.begin("x")
        bodies.end(read)
        bodies.close()
        return bodies.slow

    assert asyncio.run(one()) == 0


def test_reads_waiting_on_a_busy_process_are_not_slow_clients_but_still_have_a_deadline() -> None:
    asyncio.run(_busy())


async def _busy() -> None:
    """A thousand requests from one address on a loaded process: no read is over in the first half second (the
    process is still taking them), then they finish steadily; none is counted slow (no 429), and one that
    never finishes is still cut at the deadline."""
    bodies = BodyDeadlines(seconds=2.0, per_client=64)
    cancelled: list[bool] = []

    class Task:
        def cancel(self) -> None:
            cancelled.append(True)

    stuck = bodies.begin("10.9.9.9")
    stuck.task = Task()  # type: ignore[assignment]
    t0 = stuck.started
    first = [bodies.begin("10.9.9.9") for _ in range(600)]
    bodies.sweep(t0 + 0.25)
    second = [bodies.begin("10.9.9.9") for _ in range(400)]  # still taking them, none over yet
    bodies.sweep(t0 + 0.5)
    assert bodies.slow == 0
    backlog = first + second
    for n in (3, 4):  # then the process works through them, 500 a quarter second
        for read in backlog[(n - 3) * 500 : (n - 2) * 500]:
            bodies.end(read)
        bodies.sweep(t0 + 0.25 * n)
        assert bodies.slow <= 1, n  # at most the one that never comes, once half its deadline old
    bodies.sweep(t0 + 1.25)
    assert bodies.slow == 1
    bodies.end(bodies.begin("10.9.9.9"))  # the address is not refused
    bodies.sweep(t0 + 2.1)
    assert stuck.timed_out and cancelled == [True]  # the one that never came: cut at its deadline
