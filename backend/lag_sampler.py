"""Samples the workers' consumer lag every second into the database, so lag curves survive page reloads.

Every API process samples; one row per partition and second is kept (the first writer wins), and
samples older than a day are pruned. A dead worker still shows: its lag grows while nobody commits.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import time

from sqlalchemy import Engine
from starlette.concurrency import run_in_threadpool

from backend.kafka_view import KafkaView
from backend.timeline import prune_lag_samples, record_lag_sample
from fcfs.db import utcnow

log = logging.getLogger(__name__)
KEEP = dt.timedelta(days=1)


class LagSampler:
    def __init__(self, view: KafkaView, engine: Engine, interval_s: float) -> None:
        self.view = view
        self.engine = engine
        self.interval_s = interval_s
        self._task: asyncio.Task[None] | None = None
        self._next_prune = 0.0

    def start(self) -> None:
        if self.interval_s > 0:
            self._task = asyncio.create_task(self._run(), name="lag-sampler")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while True:
            try:
                await run_in_threadpool(self.sample)
            except Exception as exc:  # noqa: BLE001 - Kafka or the database away: try again next tick
                log.debug("lag sample skipped: %s", exc)
            await asyncio.sleep(self.interval_s)

    def sample(self) -> None:
        lag = self.view.lag(timeout_s=2.0, with_group_state=False)
        now = utcnow()
        with self.engine.begin() as conn:
            record_lag_sample(conn, lag["topic"], lag["partitions"], now)
            if time.monotonic() >= self._next_prune:
                self._next_prune = time.monotonic() + 600
                prune_lag_samples(conn, now - KEEP)
