"""A deadline for every request body, and a bound on the slow bodies one client may be sending at once.

The server times out only the header read: a client that sends a request's headers and part of its body,
then goes quiet, would hold a place of the server forever (and a bot could stage requests and send their
last byte at the opening second). Every read of a body is registered here; a sweep four times a second
cancels the reads past their deadline, and the request is answered `408 REQUEST_TIMEOUT` with the
connection closed. With many slow bodies at once in a process (an attack: a real body comes with its
headers) the deadline shortens to half a second. Registering costs an object and an append (the door runs
this for every request): no timer per request.

A body still arriving a tenth of a second after its headers is slow; a client with `per_client` slow bodies
is answered `429` for its next request, without reading it, and that connection is closed too. A burst of
requests whose bodies are all there (a thousand connections behind one address) never counts: while the
process is busy taking or finishing reads (more than PROGRESS begun or over since the last sweep), a read
still waiting may be waiting for the process, not for its client, and counts as slow only once it is half
its deadline old.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque

from backend.app.errors import too_many_pending_bodies

SWEEP_S = 0.25
SLOW_AFTER_S = 0.1  # a body still arriving this long after its headers is slow
# With more than PRESSURE slow bodies in a process, reads older than PRESSED_S are cut: connections stalled
# on purpose free the server's places in waves a quarter of the usual length.
PRESSURE = 256
PRESSED_S = 0.5
# More reads than this begun or over between two sweeps: the process is busy with bodies, and the reads
# still waiting may be waiting for it (a burst on a loaded process), not for their clients
PROGRESS = 16
# Loop iterations a sweep lets pass before it looks: one to take in the bodies the server has received, one to
# run the reads they wake
YIELDS = 2


class _Read:
    """One body being read: when it began, its task, whether it is over, slow (seen by a sweep) or cut."""

    __slots__ = ("client", "done", "slow", "started", "task", "timed_out")

    def __init__(self, client: str, started: float, task: asyncio.Task[object] | None) -> None:
        self.client = client
        self.started = started
        self.task = task
        self.done = False
        self.slow = False
        self.timed_out = False


class BodyDeadlines:
    """The bodies being read in this process: the young ones (begun since the last sweep) and the slow ones,
    each oldest first."""

    def __init__(self, seconds: float, per_client: int) -> None:
        self.seconds = seconds
        self.per_client = per_client
        self._young: deque[_Read] = deque()
        self._slow: deque[_Read] = deque()
        self._slow_by_client: dict[str, int] = {}
        self.slow = 0  # slow bodies still arriving
        self.moves = 0  # reads begun or over, ever (the activity a sweep sees)
        self._moves_at_sweep = 0
        self._previous_sweep = float("-inf")
        self._sweeper: asyncio.Task[None] | None = None

    def begin(self, client: str) -> _Read:
        """Register the body read the current task is about to do; 429 if `client` has too many slow ones."""
        if self._slow_by_client.get(client, 0) >= self.per_client:
            raise too_many_pending_bodies(self.per_client)
        read = _Read(client, time.monotonic(), asyncio.current_task())
        self._young.append(read)
        self.moves += 1
        if self._sweeper is None:
            self._sweeper = asyncio.get_running_loop().create_task(self._sweep())
        return read

    def end(self, read: _Read) -> None:
        """The read is over (the body arrived, or it failed)."""
        if read.done:
            return
        read.done = True
        self.moves += 1
        if read.slow:
            self.slow -= 1
            left = self._slow_by_client.pop(read.client, 1) - 1
            if left:
                self._slow_by_client[read.client] = left

    def expired(self, read: _Read) -> bool:
        """True when the read was cancelled by its deadline: the task is let go on (uncancelled), to answer 408."""
        if read.timed_out and read.task is not None:
            read.task.uncancel()
        return read.timed_out

    def sweep(self, now: float) -> None:
        """The young reads still going after SLOW_AFTER_S and a whole sweep become slow; the slow ones past
        their deadline are cut. A read counts as slow only once the event loop has run between two sweeps
        since it began: a body that had arrived is read by then, however busy the process (a burst of a
        thousand requests on a starved loop is not a thousand slow clients)."""
        young, slow = self._young, self._slow
        since = min(now - SLOW_AFTER_S, self._previous_sweep)
        self._previous_sweep = now
        busy = self.moves - self._moves_at_sweep > PROGRESS
        self._moves_at_sweep = self.moves
        # while the process is busy with bodies, a read is slow once half its deadline old (and cut below)
        cutoff = now - self.seconds / 2 if busy else since
        while young and (young[0].done or young[0].started <= cutoff):
            read = young.popleft()
            if not read.done:
                read.slow = True
                self.slow += 1
                self._slow_by_client[read.client] = self._slow_by_client.get(read.client, 0) + 1
                slow.append(read)
        allowed = self.seconds if self.slow <= PRESSURE else min(self.seconds, PRESSED_S)
        while slow and (slow[0].done or slow[0].started <= now - allowed):
            read = slow.popleft()
            if not read.done and read.task is not None:
                read.timed_out = True
                self.end(read)
                read.task.cancel()

    async def _sweep(self) -> None:
        while True:
            await asyncio.sleep(SWEEP_S)
            # the reads whose bodies have arrived finish first: on a starved event loop (a burst, a busy machine)
            # a read may be waiting for the loop to hand it its body, not for its client
            for _ in range(YIELDS):
                await asyncio.sleep(0)
            self.sweep(time.monotonic())

    def close(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
