"""Bot limits on participation: token buckets per user and per client address, shared by every API process.

An FCFS event is won by whoever sends the most requests fastest, so the limits must hold for the
whole server, not per process (which would multiply them by the process count). The buckets live in
one small memory-mapped file that the server process creates and its workers map (`python -m
backend` passes its path in `FCFS_RATE_LIMIT_FILE`; a process started otherwise keeps its own). A key
hashes to a group of 2 slots guarded by a POSIX byte-range lock on the file (`fcntl.lockf`, one byte
per group), so processes wait for each other only on the same group; time is CLOCK_MONOTONIC, one
clock for the whole host. A full group reuses the slot of a key idle long enough to have refilled,
else the least recently used one (that client's bucket starts full again).

A client is its address, or behind a proxy listed in `TRUSTED_PROXIES` the address that proxy saw
(`X-Forwarded-For`, read from the right, skipping trusted proxies); the header of an untrusted peer
is ignored, so it cannot be used to spoof.
"""

from __future__ import annotations

import ctypes
import fcntl
import ipaddress
import math
import mmap
import os
import struct
import threading
import time
import zlib

from backend.errors import ApiError

RATE_LIMIT_FILE = "FCFS_RATE_LIMIT_FILE"  # set by the server process, read by its workers
SLOT = struct.Struct("<Qdd")  # key hash (0: free), tokens, last update (CLOCK_MONOTONIC seconds)
GROUP = 2  # slots a key may live in, under one lock
GROUPS = 1 << 19  # 1,048,576 slots (24 MiB of a sparse file): a storm's active keys fill a few percent
LOCAL_REFUSALS = 100_000  # keys this process remembers as over their limit, refused without a lock


class _Flock(ctypes.Structure):
    _fields_ = [  # struct flock (Linux)
        ("l_type", ctypes.c_short),
        ("l_whence", ctypes.c_short),
        ("l_start", ctypes.c_int64),
        ("l_len", ctypes.c_int64),
        ("l_pid", ctypes.c_int),
    ]


# fcntl(2) called through ctypes.PyDLL keeps the GIL: `fcntl.lockf` releases it around the system call,
# and under load every release lets another thread (the server's, the producer's) take the GIL for up to
# a switch interval before this request can go on. Only the non-blocking form is called this way.
_libc_fcntl = ctypes.PyDLL(None, use_errno=True).fcntl
_libc_fcntl.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.POINTER(_Flock)]
_libc_fcntl.restype = ctypes.c_int


class _ByteLock:
    """Locks of single bytes of one file, for this process (released by the kernel if it dies)."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self._lock = _Flock(fcntl.F_WRLCK, os.SEEK_SET, 0, 1, 0)
        self._unlock = _Flock(fcntl.F_UNLCK, os.SEEK_SET, 0, 1, 0)
        self._lock_ref, self._unlock_ref = ctypes.byref(self._lock), ctypes.byref(self._unlock)

    def acquire(self, byte: int) -> None:
        """At once if the byte is free; else wait for it with the GIL released."""
        self._lock.l_start = byte
        if _libc_fcntl(self.fd, fcntl.F_SETLK, self._lock_ref) != 0:
            fcntl.lockf(self.fd, fcntl.LOCK_EX, 1, byte)

    def release(self, byte: int) -> None:
        self._unlock.l_start = byte
        _libc_fcntl(self.fd, fcntl.F_SETLK, self._unlock_ref)


class SharedBuckets:
    """Token buckets by key in memory shared by the processes that open the same file.

    This runs for every participation request, twice, so it is written for speed: a key hashes
    (CRC-32 and Adler-32, both in C) to a group of two slots, one byte-range lock per group, and a
    key over its limit is refused by the process that saw it without the shared table until it
    may take again."""

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
        self._bytes = _ByteLock(self._fd) if self._fd >= 0 else None
        self._threads = threading.Lock()  # byte-range locks do not exclude threads of one process
        self._refused: dict[bytes, float] = {}  # key -> when it may take again
        self._leased: dict[bytes, tuple[int, float]] = {}  # key -> (tokens this process holds, until when)

    def take(self, key: bytes, rate: float, burst: int, now: float | None = None, lease: int = 1) -> float:
        """Take a token from `key`'s bucket (`rate` per second, `burst` at most): 0.0 if there was one,
        else the seconds until there is.

        With `lease` > 1 up to that many tokens are taken from the shared bucket at once and spent by
        this process over the next second (then forgotten): fewer trips to the shared table for a busy
        key, at the price of admitting up to `lease` - 1 fewer requests per process (never more)."""
        now = time.monotonic() if now is None else now
        held = self._leased.get(key)
        if held is not None:
            count, expires = held
            if now < expires:
                if count > 1:
                    self._leased[key] = (count - 1, expires)
                else:
                    del self._leased[key]
                return 0.0
            del self._leased[key]
        until = self._refused.get(key)
        if until is not None:
            if now < until:
                return until - now
            del self._refused[key]
        h = (zlib.crc32(key) << 32 | zlib.adler32(key)) or 1
        group = h % self.groups
        first = group * GROUP * SLOT.size
        second = first + SLOT.size
        locks, table, unpack = self._bytes, self._map, SLOT.unpack_from
        with self._threads:
            if locks is not None:
                locks.acquire(group)
            try:
                owner, tokens, last = unpack(table, first)
                offset = first
                if owner != h:
                    other, other_tokens, other_last = unpack(table, second)
                    if other == h:
                        offset, tokens, last = second, other_tokens, other_last
                    else:  # a new key: a free or idle slot, else the less recently used one
                        if not (owner == 0 or now - last > self.idle_s) and (
                            other == 0 or now - other_last > self.idle_s or other_last < last
                        ):
                            offset = second
                        tokens, last = float(burst), now
                tokens = min(float(burst), tokens + max(now - last, 0.0) * rate)
                wait = 0.0
                taken = min(lease, int(tokens))
                if taken >= 1:
                    tokens -= taken
                else:
                    wait = (1 - tokens) / rate
                SLOT.pack_into(table, offset, h, tokens, now)
            finally:
                if locks is not None:
                    locks.release(group)
        if not wait and taken > 1:
            if len(self._leased) >= LOCAL_REFUSALS:
                self._leased.clear()
            self._leased[key] = (taken - 1, now + 1.0)
        if wait:
            if len(self._refused) >= LOCAL_REFUSALS:
                self._refused.clear()
            self._refused[key] = now + wait
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
        # an address's generous bucket is taken from 5% of its burst at a time (at most 10): a busy address
        # then costs one trip to the shared table per 10 requests, not one per request
        self.address_lease = max(1, min(10, address_burst // 20))
        buckets.idle_s = max([burst / rate for rate, burst in (self.address, self.user) if rate > 0], default=60.0)
        self.trusted = [ipaddress.ip_network(p.strip(), strict=False) for p in trusted_proxies.split(",") if p.strip()]

    def check(self, address: str, user_id: int) -> None:
        """429 RATE_LIMITED, with the seconds to wait, when this address or this user is over its rate."""
        for kind, key, (rate, burst), lease in (
            ("client", b"a:" + address.encode(), self.address, self.address_lease),
            ("user", b"u:%d" % user_id, self.user, 1),
        ):
            if rate > 0:
                wait = self.buckets.take(key, rate, burst, lease=lease)
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
