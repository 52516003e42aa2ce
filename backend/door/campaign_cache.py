"""Campaign windows cached in the API process, so the participation hot path needs no database read.

A campaign's id, mode and partition never change after creation, so a known campaign stays cached; an unknown id
is remembered for a moment only, so a campaign created since is found at once after. What an operator may switch
during the event — paused, the end — and a pre-queue's draw are written with a row in the switch log
(`campaign_switch`): the process that makes the switch updates its window at once, and every process reads the
log's new rows every `CAMPAIGN_REFRESH_S` (one indexed query) and reloads the windows they name, so a switch holds
in every process within that time.
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

from sqlalchemy import Engine, func, select, update
from starlette.concurrency import run_in_threadpool

from fcfs.campaigns import CampaignStatus
from fcfs.epoch import epoch_seconds
from fcfs.placement import key_partition
from fcfs.schema import Channel, SwitchAction, campaign, campaign_switch


@dataclass(frozen=True, slots=True)
class CampaignWindow:
    """When a campaign takes part (stored naive UTC), with its bounds as epoch seconds for the hot path, and
    the partition its requests go to (-1: by key, for a campaign placed before placement existed)."""

    campaign_id: int
    starts_at: dt.datetime | None
    ends_at: dt.datetime | None
    mode: Channel = Channel.KAFKA
    partition: int = -1
    paused: bool = False
    pre_queue_s: int = 0  # its pre-queue: requests this long before starts_at are taken, held for the opening
    drawn: bool = False  # its pre-queue is decided
    opens_s: float = field(init=False)  # from when it takes requests (its pre-queue's start)
    closes_s: float = field(init=False)
    starts_s: float = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "starts_s", _epoch_s(self.starts_at, -math.inf))
        object.__setattr__(self, "opens_s", self.starts_s - self.pre_queue_s)
        object.__setattr__(self, "closes_s", _epoch_s(self.ends_at, math.inf))

    def pre_queued(self, issued_at_ms: int | None, now_s: float) -> bool:
        """Whether a request issued at `issued_at_ms` (None: not known) waits in the pre-queue for the draw."""
        if not self.pre_queue_s or self.drawn:
            return False
        return (now_s if issued_at_ms is None else issued_at_ms / 1000) < self.starts_s

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
    def __init__(
        self,
        engine: Engine,
        partitions: Callable[[], int],
        miss_ttl_s: float = 1.0,
        on_restocked: Callable[[int], None] | None = None,
    ) -> None:
        self._engine = engine
        self._on_restocked = on_restocked  # stock added to a campaign: its FAILs may be winners now
        self._partitions = partitions  # the topic's partition count now (pinning legacy campaigns)
        self._known: dict[int, CampaignWindow] = {}
        self._missing: dict[int, float] = {}
        self._miss_ttl_s = miss_ttl_s
        self._loading: dict[int, asyncio.Future[CampaignWindow | None]] = {}  # reads in flight
        self._switches_seen: int | None = None  # the last switch-log id this process has applied

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
        else:  # unless the switch log's follower stored a newer one while this read was in flight
            window = self._known.setdefault(campaign_id, window)
        return window

    def remember(self, window: CampaignWindow) -> None:
        self._known[window.campaign_id] = window
        self._missing.pop(window.campaign_id, None)

    def switched(self, window: CampaignWindow, action: SwitchAction) -> None:
        """A switch this process made: its window at once (the other processes read the switch log)."""
        self.remember(window)
        if action is SwitchAction.ADD_STOCK and self._on_restocked is not None:
            self._on_restocked(window.campaign_id)

    def follow_switches(self) -> int:
        """Reload the windows of the known campaigns switched since the last call (by any process); how many.
        Blocking (the periodic job's thread). The first call notes where the log is and reloads every window
        known by then (a switch may have come between their reads and this call)."""
        with self._engine.connect() as conn:
            if self._switches_seen is None:
                last = conn.scalar(select(func.max(campaign_switch.c.id))) or 0
                ids = set(self._known) | set(self._loading)
            else:
                switched = conn.execute(
                    select(campaign_switch.c.id, campaign_switch.c.campaign_id, campaign_switch.c.action)
                    .where(campaign_switch.c.id > self._switches_seen)
                    .order_by(campaign_switch.c.id)
                    .limit(10_000)
                ).all()
                if not switched:
                    return 0
                last = switched[-1].id
                if self._on_restocked is not None:  # (a draw decides many requests at once too)
                    redecided = (SwitchAction.ADD_STOCK, SwitchAction.DRAW)
                    for restocked in {r.campaign_id for r in switched if r.action in redecided}:
                        self._on_restocked(restocked)
                # known, or being read now: that read may predate the switch, and yields to the window stored here
                ids = {
                    r.campaign_id for r in switched if r.campaign_id in self._known or r.campaign_id in self._loading
                }
            rows = conn.execute(select(*WINDOW_COLUMNS).where(campaign.c.id.in_(ids))).all() if ids else []
        for row in rows:
            self._known[row.id] = window_of(row)  # one assignment: the event loop sees the old or the new window
        self._switches_seen = last
        return len(rows)

    def _load(self, campaign_id: int) -> CampaignWindow | None:
        c = campaign.c
        query = select(*WINDOW_COLUMNS).where(c.id == campaign_id)
        with self._engine.connect() as conn:
            row = conn.execute(query).first()
            if row is not None and row.kafka_partition is None and row.mode is Channel.KAFKA:
                pinned = key_partition(str(campaign_id).encode(), self._partitions())
                unpinned = c.id == campaign_id, c.kafka_partition.is_(None)
                conn.execute(update(campaign).where(*unpinned).values(kafka_partition=pinned))
                conn.commit()
                row = conn.execute(query).first()
        return None if row is None else window_of(row)


WINDOW_COLUMNS = (
    campaign.c.id,
    campaign.c.starts_at,
    campaign.c.ends_at,
    campaign.c.mode,
    campaign.c.kafka_partition,
    campaign.c.paused,
    campaign.c.pre_queue_seconds,
    campaign.c.drawn_at,
)


def window_of(row: Any) -> CampaignWindow:
    """A campaign row's window (a NULL partition: by key)."""
    partition = -1 if row.kafka_partition is None else row.kafka_partition
    return CampaignWindow(
        row.id,
        row.starts_at,
        row.ends_at,
        row.mode,
        partition,
        bool(row.paused),
        row.pre_queue_seconds,
        row.drawn_at is not None,
    )
