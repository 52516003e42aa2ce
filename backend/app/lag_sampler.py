"""Samples the workers' consumer lag every second into the database, so lag curves survive page reloads.

Every API process samples; one row per partition and second is kept (the first writer wins), and
samples older than a day are pruned. A dead worker still shows: its lag grows while nobody commits.
"""

from __future__ import annotations

import datetime as dt
import time

from sqlalchemy import Engine

from backend.app.periodic import Periodic
from backend.queries.kafka_view import KafkaView
from backend.queries.timeline import prune_lag_samples, record_lag_sample
from fcfs.db import utcnow

KEEP = dt.timedelta(days=1)


class LagSampler:
    def __init__(self, view: KafkaView, engine: Engine, interval_s: float) -> None:
        self.view = view
        self.engine = engine
        self._next_prune = 0.0
        self._periodic = Periodic("lag-sampler", self.sample, interval_s)

    def start(self) -> None:
        self._periodic.start()

    async def stop(self) -> None:
        await self._periodic.stop()

    def sample(self) -> None:
        lag = self.view.lag(timeout_s=2.0, with_group_state=False)
        now = utcnow()
        with self.engine.begin() as conn:
            record_lag_sample(conn, lag["topic"], lag["partitions"], now)
            if time.monotonic() >= self._next_prune:
                self._next_prune = time.monotonic() + 600
                prune_lag_samples(conn, now - KEEP)
