"""A blocking job run once an interval beside an API process's event loop (in its thread pool), for the
process's background writes: the door's counts per second, the lag samples."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from starlette.concurrency import run_in_threadpool

log = logging.getLogger(__name__)


class Periodic:
    """`job` every `interval_s` (never when it is 0), from `start()` until `stop()`; a failing run is logged
    at debug level and the job tried again at the next tick. With `at_stop`, `stop()` runs it a last time."""

    def __init__(self, name: str, job: Callable[[], object], interval_s: float, *, at_stop: bool = False) -> None:
        self.name = name
        self.job = job
        self.interval_s = interval_s
        self.at_stop = at_stop
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self.interval_s > 0:
            self._task = asyncio.create_task(self._run(), name=self.name)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self.at_stop:
            with contextlib.suppress(Exception):
                await run_in_threadpool(self.job)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            try:
                await run_in_threadpool(self.job)
            except Exception as exc:  # noqa: BLE001 - Kafka or the database away: try again next tick
                log.debug("%s: skipped (%s)", self.name, exc)
