"""The decision feed's bookkeeping on the event loop: published decisions wake their held look-ups, the bounds
refuse, the feed says "not decided" only for a followed campaign, while current, at or above where it began to
follow and what it published. (The feed against the real database and worker: tests/integration/test_participant.py.)"""

from __future__ import annotations

import asyncio
import datetime as dt
import threading
from typing import Any

import pytest

from backend.door.decisions import Answers, Decided, DecisionFeed, Followed, Round, TooManyHeld


def feed(**bounds: Any) -> DecisionFeed:
    options = {"interval_s": 0.2, "cache_size": 1000, "held_max": 100, "held_per_client": 10} | bounds
    return DecisionFeed(None, group="g", topic="t", **options)  # type: ignore[arg-type]


def decided(place: int, offset: int) -> Decided:
    return Decided(7, place, "SUCCESS" if place <= 3 else "FAIL", place, min(place - 1, 3), 0, offset)


def test_a_published_decision_wakes_every_look_up_held_for_it() -> None:
    async def scenario() -> None:
        f = feed()
        f.publish(Round({0: 10}, {7: Followed(0, 10, 10)}, [], False))
        with f.hold("a", "1.1.1.1") as first, f.hold("a", "2.2.2.2") as second, f.hold("b", "1.1.1.1") as other:
            assert f.held == 3
            f.publish(Round({0: 12}, {7: Followed(0, 10, 12)}, [("a", decided(1, 10))], False))
            assert first.result() == second.result() == decided(1, 10)
            assert not other.done()
            assert f.answers.get("a") == decided(1, 10)
        assert f.held == 0 and not f._waiters and not f._held_by  # everything let go on the way out

    asyncio.run(scenario())


def test_the_bounds_refuse_past_the_client_and_the_process() -> None:
    async def scenario() -> None:
        f = feed(held_max=5, held_per_client=2)
        with f.hold("a", "1.1.1.1"), f.hold("b", "1.1.1.1"):
            with pytest.raises(TooManyHeld) as client_over, f.hold("c", "1.1.1.1"):
                pass
            assert client_over.value.per_client and client_over.value.limit == 2
            with f.hold("c", "2.2.2.2"), f.hold("d", "3.3.3.3"), f.hold("e", "4.4.4.4"):
                with pytest.raises(TooManyHeld) as process_over, f.hold("f", "5.5.5.5"):
                    pass
                assert not process_over.value.per_client and process_over.value.limit == 5
        with f.hold("a", "1.1.1.1"), f.hold("b", "1.1.1.1"):  # given back: room again
            assert f.held == 2

    asyncio.run(scenario())


def test_the_feed_says_not_decided_only_when_it_can_know() -> None:
    f = feed()
    assert not f.pending_in_feed(7, 0, 50)  # no round yet: the database must say
    # campaign 7 on partition 0, followed since offset 20, published up to 30 (the partition stored at 40)
    f.publish(Round({0: 40}, {7: Followed(0, 20, 30)}, [], True))
    assert f.pending_in_feed(7, 0, 30) and f.pending_in_feed(7, 0, 99)
    assert not f.pending_in_feed(7, 0, 29)  # published: decided (or no decision at all) — in answers or the database
    assert f.published_in_feed(7, 0, 25) and not f.published_in_feed(7, 0, 19)  # below `since`: before following
    assert not f.pending_in_feed(7, 0, 19)
    assert not f.pending_in_feed(7, None, 30) and not f.pending_in_feed(7, 0, None)  # no ticket
    assert not f.pending_in_feed(7, 1, 99)  # a ticket of another partition than the campaign's: made up
    assert not f.pending_in_feed(8, 0, 99)  # a campaign not followed
    f._fresh_until = 0.0  # no round for a while (the database away)
    assert not f.pending_in_feed(7, 0, 99)


def test_ahead_and_the_eta_come_from_the_partitions_progress() -> None:
    f = feed()
    f.publish(Round({0: 100}, {}, [], False))
    assert f.line(0, 150) == (50, None)  # one observation: no rate yet
    first, _ = f._progress[0][0]
    f._progress[0].clear()
    f._progress[0].extend([(first - 2.0, 100), (first, 300)])  # 200 decided in 2 s
    f._stored = {0: 300}
    assert f.rate(0) == 100.0
    assert f.line(0, 550) == (250, 2.5)
    assert f.line(0, 10) == (0, 0.0)


def test_a_campaign_asked_about_is_followed_and_the_feed_woken() -> None:
    async def scenario() -> None:
        f = feed()
        f._wake = asyncio.Event()
        f.ask(7)
        assert f._wake.is_set() and 7 in f._asked
        f._wake.clear()
        f.ask(7)  # asked again: kept, no new round needed
        assert not f._wake.is_set()

    asyncio.run(scenario())


def test_answers_keep_the_newest_when_full() -> None:
    answers = Answers(4)
    for n in range(6):
        answers.put(f"r{n}", decided(n + 1, n))
    assert len(answers) <= 4 and answers.get("r5") is not None and answers.get("r0") is None


def test_look_ups_waiting_for_the_database_are_bounded_and_refused_at_once_past_it() -> None:
    """A flood of look-ups the feed cannot answer queues no more than `reads_max` database reads per process:
    the next is refused at once (503 LOOKUPS_BUSY, Retry-After), and a slot freed takes reads again."""
    from backend.app.errors import ApiError
    from backend.door.lookup import Lookups
    from fcfs.request_ids import RequestIdSigner

    async def scenario() -> None:
        lookups = Lookups(None, RequestIdSigner("s"), feed(), group="g", topic="t")  # type: ignore[arg-type]
        lookups.reads_max = 2
        gate = threading.Event()
        try:
            held = [asyncio.ensure_future(lookups._read(gate.wait)) for _ in range(2)]
            await asyncio.sleep(0.05)
            with pytest.raises(ApiError) as refused:
                await lookups._read(lambda: True)
            assert (refused.value.status_code, refused.value.error_code) == (503, "LOOKUPS_BUSY")
            assert "Retry-After" in (refused.value.headers or {})
            gate.set()
            assert await asyncio.gather(*held) == [True, True]
            assert await lookups._read(lambda: "read") == "read"
        finally:
            gate.set()
            lookups.close()

    asyncio.run(scenario())


def test_a_held_request_remembers_when_it_was_decided() -> None:
    """The moment of a held request's decision is kept for its look-up (how long after it the answer went out);
    a decision nobody waits for keeps nothing."""

    async def scenario() -> None:
        f = feed()
        at = dt.datetime(2026, 12, 1, 12, 0, 0, 250_000)  # stored naive, in UTC
        with f.hold("a", "1.1.1.1"):
            f.publish(
                Round(
                    {0: 12},
                    {7: Followed(0, 10, 12)},
                    [("a", decided(1, 10)), ("b", decided(2, 11))],
                    False,
                    (),
                    (at, at),
                )
            )
        assert f.decided_at == {"a": at.replace(tzinfo=dt.UTC).timestamp()}

    asyncio.run(scenario())
