"""Bot limits on participation: token buckets per user and per client address, shared by every API process.

An FCFS event is won by whoever sends the most requests fastest, so the limits must hold for the
whole server, not per process (which would multiply them by the process count). The buckets live in
one small memory-mapped file that the server process creates and its workers map (`python -m
backend` passes its path in `FCFS_RATE_LIMIT_FILE`; a process started otherwise keeps its own). A key
hashes to a group of 8 slots guarded by a POSIX byte-range lock on the file (`fcntl.lockf`, one byte
per group), so processes wait for each other only on the same group; time is CLOCK_MONOTONIC, one
clock for the whole host. A full group reuses the slot of a key idle long enough to have refilled,
else the least recently used one (that client's bucket starts full again).

A client is its address, or behind a proxy listed in `TRUSTED_PROXIES` the address that proxy saw
(`X-Forwarded-For`, read from the right, skipping trusted proxies); the header of an untrusted peer
is ignored, so it cannot be used to spoof.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import ipaddress
import math
import mmap
import os
import struct
import threading
import time
from collections.abc import Iterator

from backend.errors import ApiError

RATE_LIMIT_FILE = "FCFS_RATE_LIMIT_FILE"  # set by the server process, read by its workers
SLOT = struct.Struct("<Qdd")  # key hash (0: free), tokens, last update (CLOCK_MONOTONIC seconds)
GROUP = 8  # slots a key may live in, under one lock
GROUPS = 16_384  # 131,072 slots, 3 MiB


class SharedBuckets:
    """Token buckets by key in memory shared by the processes that open the same file."""

    def __init__(self, path: str | None = None, groups: int = GROUPS, idle_s: float = 60.0) -> None:
        self.groups = groups
        self.idle_s = idle_s  # a key idle this long has a full bucket again: its slot may be reused
        size = groups * GROUP * SLOT.size
        self._fd = -1
        if path:
            self._fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
            if os.fstat(self._fd).st_size < size:
                os.ftruncate(self._fd, size)
            self._map = mmap.mmap(self._fd, size)
        else:
            self._map = mmap.mmap(-1, size)
        self._threads = threading.Lock()  # byte-range locks do not exclude threads of one process

    @contextlib.contextmanager
    def _locked(self, group: int) -> Iterator[None]:
        with self._threads:
            if self._fd < 0:
                yield
                return
            fcntl.lockf(self._fd, fcntl.LOCK_EX, 1, group)
            try:
                yield
            finally:
                fcntl.lockf(self._fd, fcntl.LOCK_UN, 1, group)

    def take(self, key: bytes, rate: float, burst: int, now: float | None = None) -> float:
        """Take a token from `key`'s bucket (`rate` per second, `burst` at most): 0.0 if there was one,
        else the seconds until there is."""
        h = int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "little") or 1
        group = h % self.groups
        base = group * GROUP * SLOT.size
        with self._locked(group):
            now = time.monotonic() if now is None else now
            found = free = oldest = -1
            oldest_seen = math.inf
            for offset in range(base, base + GROUP * SLOT.size, SLOT.size):
                owner, tokens, last = SLOT.unpack_from(self._map, offset)
                if owner == h:
                    found = offset
                    break
                if free < 0 and (owner == 0 or now - last > self.idle_s):  # unused, or refilled since
                    free = offset
                if last < oldest_seen:
                    oldest, oldest_seen = offset, last
            if found < 0:
                found = free if free >= 0 else oldest
                tokens, last = float(burst), now
            tokens = min(float(burst), tokens + max(now - last, 0.0) * rate)
            wait = 0.0
            if tokens >= 1:
                tokens -= 1
            else:
                wait = (1 - tokens) / rate
            SLOT.pack_into(self._map, found, h, tokens, now)
            return wait

    def close(self) -> None:
        self._map.close()
        if self._fd >= 0:
            os.close(self._fd)


class Limits:
    """The participation limits: per client address and per user, each off when its rate is 0."""

    def __init__(
        self,
        buckets: SharedBuckets,
        address_rate: float,
        address_burst: int,
        user_rate: float,
        user_burst: int,
        trusted_proxies: str = "",
    ) -> None:
        self.buckets = buckets
        self.address = (address_rate, address_burst)
        self.user = (user_rate, user_burst)
        buckets.idle_s = max([burst / rate for rate, burst in (self.address, self.user) if rate > 0], default=60.0)
        self.trusted = [ipaddress.ip_network(p.strip(), strict=False) for p in trusted_proxies.split(",") if p.strip()]

    def check(self, address: str, user_id: int) -> None:
        """429 RATE_LIMITED, with the seconds to wait, when this address or this user is over its rate."""
        for kind, key, (rate, burst) in (
            ("client", b"a:" + address.encode(), self.address),
            ("user", b"u:%d" % user_id, self.user),
        ):
            if rate > 0:
                wait = self.buckets.take(key, rate, burst)
                if wait:
                    raise ApiError(
                        429,
                        "RATE_LIMITED",
                        f"too many participation requests from this {kind}, slow down",
                        headers={"Retry-After": str(max(1, math.ceil(wait)))},
                    )

    def client(self, peer: str, forwarded_for: bytes | str | None) -> str:
        """The client's address: the peer's, or behind trusted proxies the first untrusted one they name."""
        if not self.trusted or not forwarded_for or not self._is_trusted(peer):
            return peer
        if isinstance(forwarded_for, bytes):
            forwarded_for = forwarded_for.decode("latin-1")
        for hop in reversed([h.strip() for h in forwarded_for.split(",")]):
            if not self._is_trusted(hop):
                return hop
        return peer

    def _is_trusted(self, address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in network for network in self.trusted)
