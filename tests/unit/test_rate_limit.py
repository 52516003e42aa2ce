"""Token buckets in shared memory: rate and burst hold, processes share them, a full group forgets the idlest."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import pytest

from backend.errors import ApiError
from backend.rate_limit import GROUP, Limits, SharedBuckets


def test_burst_then_rate() -> None:
    buckets = SharedBuckets()
    assert [buckets.take(b"a", 2.0, 3, now=0.0) for _ in range(3)] == [0.0] * 3
    assert buckets.take(b"a", 2.0, 3, now=0.0) == 0.5  # empty: the next token in half a second
    assert buckets.take(b"a", 2.0, 3, now=0.5) == 0.0
    assert buckets.take(b"b", 2.0, 3, now=0.5) == 0.0  # another key has its own bucket


def _drain(path: str, key: bytes, count: int) -> int:
    buckets = SharedBuckets(path)
    return sum(buckets.take(key, 0.001, 100, now=1.0) == 0.0 for _ in range(count))


def test_processes_that_map_one_file_take_from_the_same_buckets(tmp_path: Path) -> None:
    path = str(tmp_path / "buckets")
    with multiprocessing.get_context("spawn").Pool(4) as pool:
        granted = pool.starmap(_drain, [(path, b"u:1", 60)] * 4)
    assert sum(granted) == 100  # one burst of 100 for all four processes, not 100 each


def test_a_full_group_forgets_the_least_recently_seen_key_only() -> None:
    buckets = SharedBuckets(groups=1, idle_s=60.0)  # one group: every key competes for its 8 slots
    for _ in range(2):
        buckets.take(b"busy", 1.0, 2, now=0.0)
    assert buckets.take(b"busy", 1.0, 2, now=0.0) > 0  # over its limit
    for i in range(GROUP - 1):
        buckets.take(b"other-%d" % i, 1.0, 2, now=0.1 + i / 100)
    buckets.take(b"busy", 1.0, 2, now=0.2)  # seen again: now among the most recent
    buckets.take(b"newcomer", 1.0, 2, now=0.3)  # the group is full: the idlest other goes, not "busy"
    assert buckets.take(b"busy", 1.0, 2, now=0.3) > 0  # still limited: its bucket was kept
    assert buckets.take(b"other-0", 1.0, 2, now=0.3) == 0.0  # forgotten: starts full


def test_limits_per_address_and_per_user_and_the_client_behind_a_trusted_proxy() -> None:
    limits = Limits(SharedBuckets(), 100.0, 3, 1.0, 2, trusted_proxies="10.0.0.0/8, 192.168.1.1")
    limits.check("1.1.1.1", 7)
    limits.check("1.1.1.1", 7)
    with pytest.raises(ApiError) as refused:
        limits.check("2.2.2.2", 7)  # the same user from elsewhere: the user's bucket is empty
    assert refused.value.error_code == "RATE_LIMITED" and "user" in refused.value.message
    assert refused.value.headers == {"Retry-After": "1"}
    limits.check("1.1.1.1", 8)  # the address's 3rd request
    with pytest.raises(ApiError, match="client"):
        limits.check("1.1.1.1", 9)
    assert limits.client("10.1.2.3", b"6.6.6.6, 5.5.5.5, 10.9.9.9") == "5.5.5.5"  # right to left, past proxies
    assert limits.client("192.168.1.1", "4.4.4.4") == "4.4.4.4"
    assert limits.client("8.8.8.8", "5.5.5.5") == "8.8.8.8"  # an untrusted peer cannot name another client
    assert limits.client("10.1.2.3", None) == "10.1.2.3"
    off = Limits(SharedBuckets(), 0, 1, 0, 1)
    for _ in range(10):
        off.check("1.1.1.1", 7)  # rate 0: no limit


def test_a_lease_takes_tokens_from_the_shared_bucket_once_and_never_admits_more(tmp_path: Path) -> None:
    path = str(tmp_path / "buckets")
    one, other = SharedBuckets(path), SharedBuckets(path)
    granted = sum(one.take(b"a:1.2.3.4", 0.001, 25, now=1.0, lease=10) == 0.0 for _ in range(3))
    assert granted == 3  # one trip to the shared table: 10 tokens, 3 spent, 7 held by this process
    assert sum(other.take(b"a:1.2.3.4", 0.001, 25, now=1.0, lease=10) == 0.0 for _ in range(30)) == 15
    assert sum(one.take(b"a:1.2.3.4", 0.001, 25, now=1.5, lease=10) == 0.0 for _ in range(30)) == 7
    assert one.take(b"a:1.2.3.4", 0.001, 25, now=1.6, lease=10) > 0  # 25 in all, never more
