"""Campaign windows cached in the API process, so the participation hot path needs no database read.

A campaign's id, start, end, mode and partition never change after creation, so a known campaign stays cached; an
unknown id is remembered for a moment only, so a campaign created since is found at once after.
Concurrent misses for one id share one database read: a campaign's first second is a burst of
requests that all miss at once (1,000 separate reads made the first answers wait seconds).

A Kafka campaign from before placement existed (no partition stored) is pinned when first read, to the
partition its key has now: so the window cached here stays right when the topic grows.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine, select, update
from starlette.concurrency import run_in_threadpool

from fcfs.campaigns import CampaignStatus
from fcfs.epoch import epoch_seconds
from fcfs.placement import key_partition
from fcfs.schema import Channel, campaign


@dataclass(frozen=True, slots=True)
class CampaignWindow:
    """When a campaign takes part (stored naive UTC), with its bounds as epoch seconds for the hot path, and
    the partition its requests go to (-1: by key, for a campaign placed before placement existed)."""

    campaign_id: int
    starts_at: dt.datetime | None
    ends_at: dt.datetime | None
    mode: Channel = Channel.KAFKA
    partition: int = -1
    opens_s: float = field(init=False)
    closes_s: float = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "opens_s", _epoch_s(self.starts_at, -math.inf))
        object.__setattr__(self, "closes_s", _epoch_s(self.ends_at, math.inf))

    def refusal(self, now_s: float) -> CampaignStatus | None:
        """SCHEDULED or ENDED when the campaign takes no participation at `now_s` (as `window_refusal`)."""
        if now_s < self.opens_s:
            return CampaignStatus.SCHEDULED
        if now_s >= self.closes_s:
            return CampaignStatus.ENDED
        return None


def _epoch_s(value: dt.datetime | None, default: float) -> float:
    return default if value is None else epoch_seconds(value)


class CampaignCache:
    def __init__(self, engine: Engine, partitions: Callable[[], int], miss_ttl_s: float = 1.0) -> None:
        self._engine = engine
        self._partitions = partitions  # the topic's partition count now (pinning legacy campaigns)
        self._known: dict[int, CampaignWindow] = {}
        self._missing: dict[int, float] = {}
        self._miss_ttl_s = miss_ttl_s
        self._loading: dict[int, asyncio.Future[CampaignWindow | None]] = {}  # reads in flight

    def cached(self, campaign_id: int) -> CampaignWindow | None:
        """The window if this process knows the campaign already (no waiting)."""
        return self._known.get(campaign_id)

    async def get(self, campaign_id: int) -> CampaignWindow | None:
        window = self._known.get(campaign_id)
        if window is not None:
            return window
        if self._missing.get(campaign_id, 0.0) > time.monotonic():
            return None
        loading = self._loading.get(campaign_id)
        if loading is None:  # the first miss reads; the others wait for its answer
            loading = asyncio.ensure_future(self._fetch(campaign_id))
            self._loading[campaign_id] = loading
            loading.add_done_callback(lambda _: self._loading.pop(campaign_id, None))
        return await asyncio.shield(loading)  # a request that goes away does not cancel the others' read

    async def _fetch(self, campaign_id: int) -> CampaignWindow | None:
        window = await run_in_threadpool(self._load, campaign_id)
        if window is None:
            if len(self._missing) > 10_000:
                self._missing.clear()
            self._missing[campaign_id] = time.monotonic() + self._miss_ttl_s
        else:
            self._known[campaign_id] = window
        return window

    def remember(self, window: CampaignWindow) -> None:
        self._known[window.campaign_id] = window
        self._missing.pop(window.campaign_id, None)

    def _load(self, campaign_id: int) -> CampaignWindow | None:
        c = campaign.c
        query = select(c.id, c.starts_at, c.ends_at, c.mode, c.kafka_partition).where(c.id == campaign_id)
        with self._engine.connect() as conn:
            row = conn.execute(query).first()
            if row is not None and row.kafka_partition is None and row.mode is Channel.KAFKA:
                pinned = key_partition(str(campaign_id).encode(), self._partitions())
                unpinned = c.id == campaign_id, c.kafka_partition.is_(None)
                conn.execute(update(campaign).where(*unpinned).values(kafka_partition=pinned))
                conn.commit()
                row = conn.execute(query).first()
        return None if row is None else window_of(row)


def window_of(row: Any) -> CampaignWindow:
    """A campaign row's window (a NULL partition: by key)."""
    partition = -1 if row.kafka_partition is None else row.kafka_partition
    return CampaignWindow(row.id, row.starts_at, row.ends_at, row.mode, partition)
