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
NO_OUTCOME = "no outcome"  # a waiting user who did not learn the outcome in time
HOLD_S = 25.0  # a waiting user's look-up is held this long at most (waitSeconds), then asked again
OUTCOME_WITHIN_S = 120.0  # after the last click, the longest the waiting users keep waiting
WAIT_CONNECTIONS = 10_000  # the waiting users' connections at most (one per held look-up)
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


NO_PERCENTILES = Percentiles(None, None, None, None)


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
    waiting: int = 0  # users waiting for their outcome now
    outcomes: dict[str, int] = field(default_factory=dict)  # what the waiting users learned
    time_to_outcome: Percentiles = NO_PERCENTILES  # from the click, for the users who learned it


class Tally:
    """Counts every click sent and every answer: by status and error code, with its latency."""

    def __init__(self) -> None:
        self.total = Window()
        self.window = Window()
        self.answers: Counter[str] = Counter()
        self.behind_s = 0.0
        self.waiting = 0
        self.outcomes: Counter[str] = Counter()
        self.outcome_ms: array[float] = array("d")

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

    def outcome(self, outcome: str, since_click_ms: float | None) -> None:
        self.outcomes[outcome] += 1
        if since_click_ms is not None:
            self.outcome_ms.append(since_click_ms)

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
            self.waiting,
            dict(self.outcomes),
            percentiles(self.outcome_ms),
        )


@dataclass
class Door:
    """Where the clicks go and how a user is named: `{"userId"}` in the body, or a bearer token."""

    url: str  # the participation endpoint of the campaign
    ok_status: int  # 202 (through Kafka) or 200 (synchronous)
    proofs: SimulationProofs  # every user is a simulated one: the door wants the proof
    token_for: Callable[[int], str] | None = None

    def lookup(self, accepted: dict[str, Any], hold_s: float) -> str:
        """The held look-up of an accepted request (its ticket given: the door answers from its feed)."""
        query = f"partition={accepted['partition']}&offset={accepted['offset']}&waitSeconds={hold_s:g}"
        return f"{self.url}/{accepted['requestId']}?{query}"

    def request(self, user_id: int) -> tuple[bytes, dict[str, str]]:
        headers = {"content-type": "application/json", HEADER: self.proofs.proof(user_id)}
        if self.token_for is not None:
            headers["authorization"] = f"Bearer {self.token_for(user_id)}"
            return b"{}", headers
        return orjson.dumps({"userId": user_id}), headers


class Crowd:
    """Sends `clicks` on schedule (open loop: a slow door does not slow the crowd, it falls behind and
    says how far), at most `connections` requests in flight, until done or `stop` is set."""

    def __init__(
        self,
        door: Door,
        clicks: list[Click],
        connections: int,
        tally: Tally,
        wait_share: float = 0.0,
        wait_connections: int = WAIT_CONNECTIONS,
    ) -> None:
        self.door = door
        self.clicks = clicks
        self.connections = connections
        self.tally = tally
        self.wait_share = wait_share
        self.wait_connections = wait_connections
        self.stop = asyncio.Event()
        self.addresses = 1
        self._waiting_sessions: list[aiohttp.ClientSession] = []
        self._waiters: set[asyncio.Task[None]] = set()
        self._outcomes_by = 0.0  # loop time: the waiting users give up then (set after the last click)

    def waits(self, user_id: int) -> bool:
        """Whether this user waits for the outcome after the 202 (a fixed share of users, spread evenly)."""
        return (user_id * 0x9E3779B1) & 0xFFFF < self.wait_share * 0x10000

    async def run(self) -> bool:
        """True when every click was sent, False when stopped first."""
        sessions = await self._sessions(self.connections)
        if self.wait_share > 0:
            self._waiting_sessions = await self._sessions(self.wait_connections, total_s=None)
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
            self._outcomes_by = loop.time() + OUTCOME_WITHIN_S
            if in_flight:
                _, late = await asyncio.wait(in_flight, timeout=DRAIN_S)
                for task in late:
                    task.cancel()
                await asyncio.gather(*late, return_exceptions=True)
            if self._waiters:  # the waiting users learn their outcomes (each gives up by OUTCOME_WITHIN_S)
                stopped = asyncio.create_task(self.stop.wait())
                while self._waiters and not self.stop.is_set():
                    await asyncio.wait({*self._waiters, stopped}, return_when=asyncio.FIRST_COMPLETED)
                stopped.cancel()
                for task in list(self._waiters):
                    task.cancel()
                await asyncio.gather(*self._waiters, return_exceptions=True)
        finally:
            await asyncio.gather(*(s.close() for s in sessions + self._waiting_sessions))
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
            if self.wait_share > 0 and self.waits(user_id):
                self._follow(payload, start)
        else:
            self.tally.answer(f"{status} {_error_code(payload)}".rstrip(), False, latency_ms)

    def _follow(self, payload: bytes, clicked: float) -> None:
        """A waiting user: the outcome of the accepted request, by held look-ups (at once for a synchronous
        campaign: its answer is the outcome)."""
        try:
            data = orjson.loads(payload)["data"]
            usable = "requestId" in data and "userId" in data
        except (orjson.JSONDecodeError, KeyError, TypeError):
            usable = False
        if not usable:
            self.tally.outcome(NO_OUTCOME, None)
            return
        if data.get("status") not in (None, "PENDING"):
            self.tally.outcome(data["status"], (time.perf_counter() - clicked) * 1000)
            return
        task = asyncio.create_task(self._wait_for_outcome(data, clicked))
        self._waiters.add(task)
        self.tally.waiting += 1
        task.add_done_callback(self._waiters.discard)

    async def _wait_for_outcome(self, accepted: dict[str, Any], clicked: float) -> None:
        loop = asyncio.get_running_loop()
        session = self._waiting_sessions[accepted["userId"] % len(self._waiting_sessions)]
        url = self.door.lookup(accepted, HOLD_S)
        outcome, since_click_ms = NO_OUTCOME, None
        try:
            while not self.stop.is_set() and (not self._outcomes_by or loop.time() < self._outcomes_by):
                try:
                    async with session.get(url, timeout=aiohttp.ClientTimeout(total=HOLD_S + 10)) as response:
                        payload = await response.read()
                        status = response.status
                except (aiohttp.ClientError, TimeoutError, OSError) as exc:
                    log.debug("look-up: no answer: %s", exc)
                    await asyncio.sleep(1.0)
                    continue
                if status != 200:  # refused (a bound, the database away): asked again after a pause
                    await asyncio.sleep(1.0)
                    continue
                data = orjson.loads(payload)["data"]
                if data["status"] != "PENDING":
                    outcome, since_click_ms = data["status"], (time.perf_counter() - clicked) * 1000
                    break
        finally:
            self.tally.waiting -= 1
            self.tally.outcome(outcome, since_click_ms)

    async def _sessions(
        self, connections: int, total_s: float | None = REQUEST_TIMEOUT_S
    ) -> list[aiohttp.ClientSession]:
        """One session per source address (as many as connections allow, up to MAX_ADDRESSES, when the
        door is on loopback and the system lets us bind them), the connections shared among them."""
        timeout = aiohttp.ClientTimeout(total=total_s)
        wanted = min(connections, MAX_ADDRESSES) if is_loopback(self.door.url) else 1
        if wanted > 1 and not await _can_bind(str(ipaddress.IPv4Address(ADDRESS_BASE + 1))):
            log.info("cannot send from other loopback addresses here (%s): one address", sys.platform)
            wanted = 1
        self.addresses = wanted
        sessions = []
        for i in range(wanted):
            per = connections // wanted + (1 if i < connections % wanted else 0)
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
