"""Sending a crowd's clicks through the door on schedule, and counting what comes back."""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
import sys
import time
from array import array
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import aiohttp
import numpy as np
import orjson

from crowd.plan import Click
from fcfs.crowd_runs import is_loopback
from fcfs.simulated import HEADER, SimulationProofs

log = logging.getLogger(__name__)
REQUEST_TIMEOUT_S = 10.0  # a request without an answer by then counts as "no answer"
DRAIN_S = REQUEST_TIMEOUT_S + 1  # after the last click, the longest wait for the answers still due
NO_ANSWER = "no answer"
# Simulated users come from many loopback addresses (127.77.x.y), as a crowd comes from many addresses:
# the door's per-address limit sees a crowd, not one client. Linux routes all of 127.0.0.0/8 to loopback.
ADDRESS_BASE = int(ipaddress.IPv4Address("127.77.0.1"))
MAX_ADDRESSES = 250


class Percentiles(NamedTuple):
    p50: float | None
    p95: float | None
    p99: float | None
    max: float | None


def percentiles(latencies_ms: array[float] | list[float]) -> Percentiles:
    if not len(latencies_ms):
        return Percentiles(None, None, None, None)
    values = np.asarray(latencies_ms, dtype=np.float64)
    p50, p95, p99 = (round(float(v), 2) for v in np.percentile(values, [50, 95, 99]))
    return Percentiles(p50, p95, p99, round(float(values.max()), 2))


@dataclass
class Window:
    """One second's answers (or the whole run's)."""

    sent: int = 0
    accepted: int = 0
    refused: int = 0
    failed: int = 0
    latencies_ms: array[float] = field(default_factory=lambda: array("d"))


@dataclass(frozen=True)
class Report:
    """What the crowd has measured so far, and in the second just past."""

    sent: int
    accepted: int
    refused: int
    failed: int
    answers: dict[str, int]
    overall: Percentiles
    behind_s: float
    second: Window
    second_percentiles: Percentiles


class Tally:
    """Counts every click sent and every answer: by status and error code, with its latency."""

    def __init__(self) -> None:
        self.total = Window()
        self.window = Window()
        self.answers: Counter[str] = Counter()
        self.behind_s = 0.0

    def sent(self) -> None:
        self.total.sent += 1
        self.window.sent += 1

    def answer(self, key: str, ok: bool, latency_ms: float | None) -> None:
        self.answers[key] += 1
        for w in (self.total, self.window):
            if latency_ms is None:
                w.failed += 1
            else:
                w.latencies_ms.append(latency_ms)
                if ok:
                    w.accepted += 1
                else:
                    w.refused += 1

    def report(self) -> Report:
        """The totals so far; starts a new second."""
        second, self.window = self.window, Window()
        t = self.total
        return Report(
            t.sent,
            t.accepted,
            t.refused,
            t.failed,
            dict(self.answers),
            percentiles(t.latencies_ms),
            round(self.behind_s, 3),
            second,
            percentiles(second.latencies_ms),
        )


@dataclass
class Door:
    """Where the clicks go and how a user is named: `{"userId"}` in the body, or a bearer token."""

    url: str  # the participation endpoint of the campaign
    ok_status: int  # 202 (through Kafka) or 200 (synchronous)
    proofs: SimulationProofs  # every user is a simulated one: the door wants the proof
    token_for: Callable[[int], str] | None = None

    def request(self, user_id: int) -> tuple[bytes, dict[str, str]]:
        headers = {"content-type": "application/json", HEADER: self.proofs.proof(user_id)}
        if self.token_for is not None:
            headers["authorization"] = f"Bearer {self.token_for(user_id)}"
            return b"{}", headers
        return orjson.dumps({"userId": user_id}), headers


class Crowd:
    """Sends `clicks` on schedule (open loop: a slow door does not slow the crowd, it falls behind and
    says how far), at most `connections` requests in flight, until done or `stop` is set."""

    def __init__(self, door: Door, clicks: list[Click], connections: int, tally: Tally) -> None:
        self.door = door
        self.clicks = clicks
        self.connections = connections
        self.tally = tally
        self.stop = asyncio.Event()
        self.addresses = 1

    async def run(self) -> bool:
        """True when every click was sent, False when stopped first."""
        sessions = await self._sessions()
        in_flight: set[asyncio.Task[None]] = set()
        slots = asyncio.Semaphore(self.connections)
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        completed = True
        try:
            for click in self.clicks:
                due = t0 + click.at_s
                while (wait := due - loop.time()) > 0 and not self.stop.is_set():
                    await asyncio.sleep(min(wait, 0.05))
                if not self.stop.is_set():
                    await slots.acquire()
                if self.stop.is_set():
                    completed = False
                    break
                self.tally.behind_s = max(loop.time() - due, 0.0)
                session = sessions[click.user_id % len(sessions)]
                task = asyncio.create_task(self._send(session, click.user_id))
                in_flight.add(task)
                task.add_done_callback(in_flight.discard)
                task.add_done_callback(lambda _: slots.release())
            if in_flight:
                _, late = await asyncio.wait(in_flight, timeout=DRAIN_S)
                for task in late:
                    task.cancel()
                await asyncio.gather(*late, return_exceptions=True)
        finally:
            await asyncio.gather(*(s.close() for s in sessions))
        return completed

    async def _send(self, session: aiohttp.ClientSession, user_id: int) -> None:
        body, headers = self.door.request(user_id)
        self.tally.sent()
        start = time.perf_counter()
        try:
            async with session.post(self.door.url, data=body, headers=headers) as response:
                payload = await response.read()
                status = response.status
        except asyncio.CancelledError:
            self.tally.answer(NO_ANSWER, False, None)
            raise
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            log.debug("no answer: %s", exc)
            self.tally.answer(NO_ANSWER, False, None)
            return
        latency_ms = (time.perf_counter() - start) * 1000
        if status == self.door.ok_status:
            self.tally.answer(str(status), True, latency_ms)
        else:
            self.tally.answer(f"{status} {_error_code(payload)}".rstrip(), False, latency_ms)

    async def _sessions(self) -> list[aiohttp.ClientSession]:
        """One session per source address (as many as connections allow, up to MAX_ADDRESSES, when the
        door is on loopback and the system lets us bind them), the connections shared among them."""
        timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S)
        wanted = min(self.connections, MAX_ADDRESSES) if is_loopback(self.door.url) else 1
        if wanted > 1 and not await _can_bind(str(ipaddress.IPv4Address(ADDRESS_BASE + 1))):
            log.info("cannot send from other loopback addresses here (%s): one address", sys.platform)
            wanted = 1
        self.addresses = wanted
        sessions = []
        for i in range(wanted):
            per = self.connections // wanted + (1 if i < self.connections % wanted else 0)
            local = (str(ipaddress.IPv4Address(ADDRESS_BASE + i)), 0) if wanted > 1 else None
            connector = aiohttp.TCPConnector(limit=per, local_addr=local, ttl_dns_cache=None)
            sessions.append(aiohttp.ClientSession(connector=connector, timeout=timeout))
        return sessions


def _error_code(payload: bytes) -> str:
    try:
        body: Any = orjson.loads(payload)
    except orjson.JSONDecodeError:
        return ""
    code = body.get("errorCode") if isinstance(body, dict) else None
    return str(code)[:40] if code else ""


async def _can_bind(address: str) -> bool:
    try:
        with socket.socket() as s:
            s.bind((address, 0))
    except OSError:
        return False
    return True
