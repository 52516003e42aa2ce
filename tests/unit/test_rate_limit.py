"""The per-client token bucket: rate and burst hold, and a full table forgets the least recently seen client."""

from __future__ import annotations

from backend.rate_limit import TokenBuckets


def test_burst_then_rate() -> None:
    buckets = TokenBuckets(rate=2.0, burst=3)
    assert [buckets.take("a", now=0.0) for _ in range(3)] == [0.0] * 3
    assert buckets.take("a", now=0.0) == 0.5  # empty: the next token in half a second
    assert buckets.take("a", now=0.5) == 0.0
    assert buckets.take("b", now=0.5) == 0.0  # another client has its own bucket


def test_a_full_table_evicts_the_least_recently_seen_client_only() -> None:
    buckets = TokenBuckets(rate=1.0, burst=2, max_keys=3)
    for _ in range(2):
        buckets.take("busy", now=0.0)
    assert buckets.take("busy", now=0.0) > 0  # over its limit
    buckets.take("idle", now=0.0)
    buckets.take("other", now=0.0)
    buckets.take("busy", now=0.1)  # seen again: now the most recent
    buckets.take("newcomer", now=0.2)  # the table is full: "idle" goes, not everyone
    assert len(buckets._buckets) == 3 and "idle" not in buckets._buckets
    assert buckets.take("busy", now=0.2) > 0  # still limited: its bucket was kept
