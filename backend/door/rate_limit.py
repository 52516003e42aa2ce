"""Bot limits on participation: token buckets per user and per client address, shared by every API process.

An FCFS event is won by whoever sends the most requests fastest, so the limits must hold for the
whole server, not per process (which would multiply them by the process count). The buckets live in
one small memory-mapped file that the server process creates and its workers map (`python -m
backend` passes its path in `FCFS_RATE_LIMIT_FILE`; a process started otherwise keeps its own); time
is CLOCK_MONOTONIC, one clock for the whole host.

Each limit (per address, per user) has a table of its own in the file. A key goes to one group of 8
slots by a keyed hash (BLAKE2b with a random key written into the file when it is created), so nobody
outside can choose keys that land in one group; the group is guarded by one of `LOCKS` mutexes kept in
the file (process-shared and robust: a process that dies holding one hands it to the next taker, whose
bucket may then lack the dead one's last update), so processes wait for each other only on the same
stripe of groups. Taking a free mutex is an atomic instruction in user space, where the POSIX byte-range
locks used before cost two system calls per request (a third of the limits' cost, measured). A key keeps its slot until
it has been idle long enough for its bucket to be full again (then the slot may be reused: forgetting
it changes nothing). When all 7 keyed slots of its group hold keys still refilling, a new key shares the
group's 8th slot, its overflow bucket, with every other key in that case: it is never handed a bucket
fuller than its own would be, and no live key is ever evicted. Capacity: `GROUPS` x 7 keys active
within the idle time per limit (917,504 by default); past about half of that, new keys start to
share overflow buckets (stricter, never looser) — see `docs/` for the measured table.

A client is its address as `fcfs.clients` reads it (behind trusted proxies, the one they name).
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import hashlib
import math
import mmap
import os
import secrets
import struct
import threading
import time

from backend.app.errors import rate_limited

RATE_LIMIT_FILE = "FCFS_RATE_LIMIT_FILE"  # set by the server process, read by its workers
MAGIC = b"FCFS-RL4"  # the file's first bytes, then the hash key
HEADER = 4096  # the header's page: magic and key
LOCKS = 4096  # the mutexes guarding the groups (a group's is its lock number modulo LOCKS), after the header
MUTEX_BYTES = 64  # room for a pthread_mutex_t (40 bytes on x86-64, 48 on arm64), one cache line each
LOCKS_BYTES = LOCKS * MUTEX_BYTES
TABLES_AT = HEADER + LOCKS_BYTES  # where the limits' tables begin
KEY_BYTES = 16
GROUP = 8  # slots of a group, under one lock: the first 7 for keys, the last the group's overflow bucket
KEYED = GROUP - 1
OWNERS = struct.Struct(f"<{GROUP}Q")  # a group's key hashes (0: free), then GROUP x STATE
OWNER = struct.Struct("<Q")
STATE = struct.Struct("<dd")  # tokens, last update (CLOCK_MONOTONIC seconds)
GROUP_BYTES = OWNERS.size + GROUP * STATE.size
GROUPS = 1 << 17  # groups per limit: 917,504 keyed slots (24 MiB of a sparse file)
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
    """Locks of single bytes of one file, for this process (released by the kernel if it dies): the header's,
    taken once, while the first process to open the file prepares it."""

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


# The groups' mutexes: POSIX mutexes in the shared file, PTHREAD_PROCESS_SHARED and PTHREAD_MUTEX_ROBUST. Trying
# and releasing one keep the GIL (PyDLL: no system call when it is free); only waiting for a taken one releases it.
_gil = ctypes.PyDLL(None, use_errno=True)
_nogil = ctypes.CDLL(None, use_errno=True)
_trylock, _unlock, _consistent = _gil.pthread_mutex_trylock, _gil.pthread_mutex_unlock, _gil.pthread_mutex_consistent
_lock_waiting = _nogil.pthread_mutex_lock
for _f in (_trylock, _unlock, _consistent, _lock_waiting, _gil.pthread_mutex_init):
    _f.restype = ctypes.c_int
for _f in (_trylock, _unlock, _consistent, _lock_waiting):
    _f.argtypes = [ctypes.c_void_p]
_gil.pthread_mutex_init.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
EBUSY = errno.EBUSY
EOWNERDEAD = errno.EOWNERDEAD
PTHREAD_PROCESS_SHARED = 1
PTHREAD_MUTEX_ROBUST = 1


def _init_mutexes(address: int, count: int) -> None:
    """`count` robust, process-shared mutexes from `address`, MUTEX_BYTES apart (the first opener, once)."""
    attr = ctypes.create_string_buffer(64)  # a pthread_mutexattr_t (4 or 8 bytes), with room
    for call, value in (
        (_gil.pthread_mutexattr_init, None),
        (_gil.pthread_mutexattr_setpshared, PTHREAD_PROCESS_SHARED),
        (_gil.pthread_mutexattr_setrobust, PTHREAD_MUTEX_ROBUST),
    ):
        code = call(attr) if value is None else call(attr, ctypes.c_int(value))
        if code != 0:
            raise OSError(code, f"{call.__name__}: {os.strerror(code)}")
    for n in range(count):
        code = _gil.pthread_mutex_init(address + n * MUTEX_BYTES, attr)
        if code != 0:
            raise OSError(code, f"pthread_mutex_init: {os.strerror(code)}")
    _gil.pthread_mutexattr_destroy(attr)


def _acquire(mutex: int) -> None:
    """Take a group's mutex: at once if free, else wait for it (GIL released); a dead holder's is taken over."""
    code = _trylock(mutex)
    if code == EBUSY:
        code = _lock_waiting(mutex)
    if code == EOWNERDEAD:  # its holder died holding it: the state it guards is usable (a bucket, 16 bytes)
        code = _consistent(mutex)
    if code != 0:
        raise OSError(code, f"rate limit mutex: {os.strerror(code)}")


class SharedBuckets:
    """Token buckets by key in memory shared by the processes that open the same file, `tables` limits
    side by side (each its own groups, and so its own overflow buckets).

    This runs for every participation request, twice, so it is written for speed: one keyed hash (in
    C), one lock, one read of the group's owners; and a key over its limit is refused by the process
    that saw it, without the shared table, until it may take again."""

    def __init__(self, path: str | None = None, groups: int = GROUPS, idle_s: float = 60.0, tables: int = 2) -> None:
        self.groups = groups
        self.tables = tables
        self.idle_s = idle_s  # a key idle this long has a full bucket again: its slot may be reused
        size = TABLES_AT + tables * groups * GROUP_BYTES
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
        self._anchor = ctypes.c_char.from_buffer(self._map, HEADER)  # (released by close())
        self._mutexes = ctypes.addressof(self._anchor)
        self._hasher = hashlib.blake2b(digest_size=8, key=self._hash_key())
        self._refused: dict[bytes, float] = {}  # key -> when it may take again
        self._leased: dict[bytes, tuple[int, float]] = {}  # key -> (tokens this process holds, until when)

    def _hash_key(self) -> bytes:
        """The file's hash key, written by the first process that opens it (under the header's lock), which
        also prepares the mutexes."""
        header_lock = self.tables * self.groups  # a lock byte past every group's
        with self._threads:
            if self._bytes is not None:
                self._bytes.acquire(header_lock)
            try:
                if self._map[: len(MAGIC)] != MAGIC:
                    _init_mutexes(self._mutexes, LOCKS)
                    self._map[len(MAGIC) : len(MAGIC) + KEY_BYTES] = secrets.token_bytes(KEY_BYTES)
                    self._map[: len(MAGIC)] = MAGIC
                return bytes(self._map[len(MAGIC) : len(MAGIC) + KEY_BYTES])
            finally:
                if self._bytes is not None:
                    self._bytes.release(header_lock)

    def group_of(self, key: bytes) -> tuple[int, int]:
        """(the key's hash, never 0; its group)."""
        hasher = self._hasher.copy()
        hasher.update(key)
        h = int.from_bytes(hasher.digest(), "little") or 1
        return h, h % self.groups

    def take(
        self, key: bytes, rate: float, burst: int, now: float | None = None, lease: int = 1, table: int = 0
    ) -> float:
        """Take a token from `key`'s bucket in `table` (`rate` per second, `burst` at most): 0.0 if there was
        one, else the seconds until there is.

        With `lease` > 1 up to that many tokens are taken from the shared bucket at once and spent by
        this process over the next second (then forgotten): fewer trips to the shared table for a busy
        key, at the price of admitting up to `lease` - 1 fewer requests per process (never more)."""
        now = time.monotonic() if now is None else now
        held = self._leased.pop(key, None)  # pop and put: safe for the threads of one process
        if held is not None and now < held[1]:
            if held[0] > 1:
                self._leased[key] = (held[0] - 1, held[1])
            return 0.0
        until = self._refused.get(key)
        if until is not None:
            if now < until:
                return until - now
            self._refused.pop(key, None)
        hasher = self._hasher.copy()  # group_of, inline: this line runs for every request
        hasher.update(key)
        h = int.from_bytes(hasher.digest(), "little") or 1
        lock = table * self.groups + h % self.groups
        base = TABLES_AT + lock * GROUP_BYTES
        states = base + OWNERS.size
        table_map, unpack = self._map, STATE.unpack_from
        mutex = self._mutexes + lock % LOCKS * MUTEX_BYTES
        _acquire(mutex)
        try:
            owners = OWNERS.unpack_from(table_map, base)  # the overflow's owner stays 0: never a key's
            if h in owners:
                slot = owners.index(h)
                tokens, last = unpack(table_map, states + slot * STATE.size)
            else:  # a new key: a free slot, else one idle long enough, else the overflow
                slot = owners.index(0)
                if slot == KEYED:
                    slot = self._idle_slot(states, now)
                if slot < KEYED:
                    OWNER.pack_into(table_map, base + slot * OWNER.size, h)
                    tokens, last = float(burst), now
                else:
                    tokens, last = unpack(table_map, states + slot * STATE.size)
                    if last == 0.0:  # the overflow bucket's first use: full
                        tokens, last = float(burst), now
            tokens = min(float(burst), tokens + max(now - last, 0.0) * rate)
            wait = 0.0
            taken = min(lease, int(tokens))
            if taken >= 1:
                tokens -= taken
            else:
                wait = (1 - tokens) / rate
            STATE.pack_into(table_map, states + slot * STATE.size, tokens, now)
        finally:
            _unlock(mutex)
        if not wait and taken > 1:
            if len(self._leased) >= LOCAL_REFUSALS:
                self._leased.clear()
            self._leased[key] = (taken - 1, now + 1.0)
        if wait:
            if len(self._refused) >= LOCAL_REFUSALS:
                self._refused.clear()
            self._refused[key] = now + wait
        return wait

    def mutex_of(self, group: int, table: int = 0) -> int:
        """The address of the mutex guarding `group` of `table`."""
        return self._mutexes + (table * self.groups + group) % LOCKS * MUTEX_BYTES

    def holds(self, key: bytes, table: int = 0) -> bool:
        """Whether `key` has a slot of its own in `table` (False: unknown, or sharing its group's overflow)."""
        h, group = self.group_of(key)
        return h in OWNERS.unpack_from(self._map, TABLES_AT + (table * self.groups + group) * GROUP_BYTES)[:KEYED]

    def _idle_slot(self, states: int, now: float) -> int:
        """A keyed slot for a new key in a full group: the idlest of those idle for `idle_s` (their buckets are
        full again: forgetting them changes nothing); KEYED (the overflow) when every key still refills."""
        idlest, idlest_last = KEYED, now - self.idle_s
        for slot in range(KEYED):
            _, last = STATE.unpack_from(self._map, states + slot * STATE.size)
            if last < idlest_last:
                idlest, idlest_last = slot, last
        return idlest

    def close(self) -> None:
        del self._anchor  # (a mapping with a pointer into it cannot be closed)
        self._map.close()
        if self._fd >= 0:
            os.close(self._fd)


ADDRESS, USER = 0, 1  # the limits' tables


class Limits:
    """The participation limits: per client address and per user, each off when its rate is 0."""

    def __init__(
        self,
        buckets: SharedBuckets,
        address_rate: float,
        address_burst: int,
        user_rate: float,
        user_burst: int,
    ) -> None:
        self.buckets = buckets
        self.address = (address_rate, address_burst)
        self.user = (user_rate, user_burst)
        # an address's generous bucket is taken from 5% of its burst at a time (at most 10): a busy address
        # then costs one trip to the shared table per 10 requests, not one per request
        self.address_lease = max(1, min(10, address_burst // 20))
        buckets.idle_s = max([burst / rate for rate, burst in (self.address, self.user) if rate > 0], default=60.0)

    def check(self, address: str, user_id: int, now: float | None = None) -> None:
        """429 RATE_LIMITED, with the seconds to wait, when this address or this user is over its rate."""
        for kind, table, key, (rate, burst), lease in (
            ("client", ADDRESS, b"a:" + address.encode(), self.address, self.address_lease),
            ("user", USER, b"u:%d" % user_id, self.user, 1),
        ):
            if rate > 0:
                wait = self.buckets.take(key, rate, burst, now=now, lease=lease, table=table)
                if wait:
                    raise rate_limited(kind, max(1, math.ceil(wait)))
