"""Token buckets in shared memory: rate and burst hold, processes share them, a full group forgets the idlest."""

from __future__ import annotations

import multiprocessing
import multiprocessing.synchronize
import os
import threading
import zlib
from pathlib import Path

import pytest

from backend.app.errors import ApiError
from backend.door.rate_limit import KEYED, Limits, SharedBuckets, _acquire
from fcfs.clients import ClientAddresses


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


def test_a_full_group_keeps_its_live_keys_and_sends_a_newcomer_to_its_overflow_bucket() -> None:
    buckets = SharedBuckets(groups=1, idle_s=60.0)  # one group: every key competes for its 7 keyed slots
    for _ in range(2):
        buckets.take(b"busy", 1.0, 2, now=0.0)
    assert buckets.take(b"busy", 1.0, 2, now=0.0) > 0  # over its limit
    for i in range(KEYED - 1):
        buckets.take(b"other-%d" % i, 1.0, 2, now=0.1 + i / 100)
    newcomers = [b"newcomer-%d" % i for i in range(5)]  # the group is full of live keys: they share one bucket
    assert [buckets.take(k, 1.0, 2, now=0.3) == 0.0 for k in newcomers] == [True, True, False, False, False]
    assert buckets.take(b"busy", 1.0, 2, now=0.3) > 0  # still limited: no live key was evicted
    assert buckets.holds(b"busy") and not any(buckets.holds(k) for k in newcomers)
    assert buckets.take(b"other-0", 1.0, 2, now=0.3) == 0.0  # its own bucket: 1 token left of 2
    assert buckets.take(b"newcomer-9", 1.0, 2, now=61.0) == 0.0  # idle keys' slots are reused once full again
    assert buckets.take(b"busy", 1.0, 2, now=61.0) == 0.0 and buckets.take(b"busy", 1.0, 2, now=61.0) == 0.0


def _old_group(key: bytes) -> int:
    """The slot group of the limiter before its keyed hash: Adler-32's low 19 bits, easy to aim at."""
    return (zlib.crc32(key) << 32 | zlib.adler32(key)) % 2**19


def test_ids_chosen_to_collide_cannot_switch_an_address_limit_off() -> None:
    """A bot at one address sends user ids chosen to share its address's group under the old hash (which
    evicted the address's bucket, handing it back full: 10,000 of 10,000 admitted). Now the hash is keyed
    and a full group evicts nobody: the address gets its burst + rate x time."""
    address = b"a:10.0.0.7"
    aimed = [u for u in range(1_000_000, 4_000_000) if _old_group(b"u:%d" % u) == _old_group(address)]
    assert len(aimed) >= 100, len(aimed)
    limits = Limits(SharedBuckets(tables=2), 100.0, 200, 1.0, 5)
    admitted = 0
    for n in range(10_000):  # 1,000 requests a second for 10 s
        user = aimed[n % len(aimed)] if n % 2 else 10_000_000 + n  # aimed ids, and fresh ones in between
        try:
            limits.check("10.0.0.7", user, now=n / 1000)
            admitted += 1
        except ApiError:
            pass
    assert admitted <= 200 + 100 * 10 + 10, admitted  # burst + rate x time (+ one lease of 10)


def test_one_user_in_a_storm_of_distinct_users_gets_no_more_than_the_rate() -> None:
    """2,000 new users a second from 2,000 addresses, and one user at 500 requests a second among them, for
    10 s on a table small enough to fill (2,048 groups): the user gets its burst + rate x time."""
    limits = Limits(SharedBuckets(groups=2048, tables=2), 10.0, 20, 2.0, 5)
    admitted = 0
    for n in range(25_000):
        now = n / 2500
        if n % 5 == 0:
            try:
                limits.check("10.9.9.9", 42, now=now)
                admitted += 1
            except ApiError:
                pass
        else:
            limits.check(f"10.{n % 250}.{n // 250 % 250}.1", 1_000_000 + n, now=now)
    assert admitted <= 5 + 2 * 10, admitted


def test_the_hash_key_is_random_per_file_and_shared_by_its_processes(tmp_path: Path) -> None:
    path = str(tmp_path / "buckets")
    one, again, other = SharedBuckets(path), SharedBuckets(path), SharedBuckets(str(tmp_path / "other"))
    keys = [b"u:%d" % n for n in range(50)]
    assert [one.group_of(k) for k in keys] == [again.group_of(k) for k in keys]
    assert [one.group_of(k) for k in keys] != [other.group_of(k) for k in keys]


def test_limits_state_is_safe_for_threads() -> None:
    """Threads of one process (the synchronous path) taking from the same leased and refused keys."""
    limits = Limits(SharedBuckets(tables=2), 1000.0, 400, 5.0, 3)
    errors: list[BaseException] = []

    def hammer(seed: int) -> None:
        for n in range(20_000):
            try:
                limits.check(f"10.0.0.{n % 3}", n % 7)
            except ApiError:
                pass
            except BaseException as exc:  # a KeyError here would be a 500
                errors.append(exc)

    threads = [threading.Thread(target=hammer, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


def test_limits_per_address_and_per_user() -> None:
    limits = Limits(SharedBuckets(), 100.0, 3, 1.0, 2)
    limits.check("1.1.1.1", 7)
    limits.check("1.1.1.1", 7)
    with pytest.raises(ApiError) as refused:
        limits.check("2.2.2.2", 7)  # the same user from elsewhere: the user's bucket is empty
    assert refused.value.error_code == "RATE_LIMITED" and "user" in refused.value.message
    assert refused.value.headers == {"Retry-After": "1"}
    limits.check("1.1.1.1", 8)  # the address's 3rd request
    with pytest.raises(ApiError, match="client"):
        limits.check("1.1.1.1", 9)
    off = Limits(SharedBuckets(), 0, 1, 0, 1)
    for _ in range(10):
        off.check("1.1.1.1", 7)  # rate 0: no limit


def test_the_client_behind_a_trusted_proxy() -> None:
    clients = ClientAddresses("10.0.0.0/8, 192.168.1.1")
    assert clients.of("10.1.2.3", b"6.6.6.6, 5.5.5.5, 10.9.9.9") == "5.5.5.5"  # right to left, past proxies
    assert clients.of("192.168.1.1", "4.4.4.4") == "4.4.4.4"
    assert clients.of("8.8.8.8", "5.5.5.5") == "8.8.8.8"  # an untrusted peer cannot name another client
    assert clients.of("10.1.2.3", None) == "10.1.2.3"
    assert clients.of("10.1.2.3", b"6.6.6.6, 5.5.5.5:4321") == "5.5.5.5"  # a hop with a port: its address
    assert clients.of("10.1.2.3", "[2001:db8::7]:443, 10.0.0.9") == "2001:db8::7"
    assert clients.of("10.1.2.3", "2001:db8::7") == "2001:db8::7"
    assert clients.of("10.1.2.3", "6.6.6.6, not-an-address") == "10.1.2.3"  # unreadable: the proxy itself
    assert ClientAddresses("").of("10.1.2.3", "5.5.5.5") == "10.1.2.3"  # no trusted proxy: the header is ignored


def test_a_lease_takes_tokens_from_the_shared_bucket_once_and_never_admits_more(tmp_path: Path) -> None:
    path = str(tmp_path / "buckets")
    one, other = SharedBuckets(path), SharedBuckets(path)
    granted = sum(one.take(b"a:1.2.3.4", 0.001, 25, now=1.0, lease=10) == 0.0 for _ in range(3))
    assert granted == 3  # one trip to the shared table: 10 tokens, 3 spent, 7 held by this process
    assert sum(other.take(b"a:1.2.3.4", 0.001, 25, now=1.0, lease=10) == 0.0 for _ in range(30)) == 15
    assert sum(one.take(b"a:1.2.3.4", 0.001, 25, now=1.5, lease=10) == 0.0 for _ in range(30)) == 7
    assert one.take(b"a:1.2.3.4", 0.001, 25, now=1.6, lease=10) > 0  # 25 in all, never more


def _take_and_die(path: str, key: bytes, taken: multiprocessing.synchronize.Event) -> None:
    """Take the mutex of `key`'s group and die holding it (as a process killed mid-request would)."""
    buckets = SharedBuckets(path)
    _, group = buckets.group_of(key)
    _acquire(buckets.mutex_of(group))
    taken.set()
    os._exit(0)


def test_a_process_that_dies_holding_a_groups_mutex_does_not_stop_the_others(tmp_path: Path) -> None:
    path = str(tmp_path / "buckets")
    buckets = SharedBuckets(path)
    context = multiprocessing.get_context("spawn")
    taken = context.Event()
    dying = context.Process(target=_take_and_die, args=(path, b"u:7", taken))
    dying.start()
    assert taken.wait(30)
    dying.join(30)
    answers: list[float] = []
    taker = threading.Thread(target=lambda: answers.append(buckets.take(b"u:7", 1.0, 2, now=1.0)), daemon=True)
    taker.start()
    taker.join(10)
    assert answers == [0.0]  # taken over from the dead holder, not waited for forever
    assert [buckets.take(b"u:7", 1.0, 2, now=1.0) for _ in range(2)] == [0.0, 1.0]  # and usable after


def test_groups_are_guarded_by_shared_mutexes_across_processes(tmp_path: Path) -> None:
    """Four processes taking one key's tokens at once, each many times: exactly the burst is granted (a lost
    update under a broken lock would grant more)."""
    path = str(tmp_path / "buckets")
    with multiprocessing.get_context("spawn").Pool(4) as pool:
        granted = pool.starmap(_drain, [(path, b"u:2", 5_000)] * 4)
    assert sum(granted) == 100
