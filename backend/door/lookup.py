"""The look-up of a participation request: `GET /api/campaigns/{id}/participation/{requestId}`.

Answered from the decision feed (backend/door/decisions.py) wherever it can: a decided request the process
knows costs no database read, nor does a pending one that shows its ticket (`partition`, `offset`), nor a
held one (`waitSeconds`). The database is read when the feed cannot tell: a request decided before the
process started (read once, then kept), a look-up without the ticket, or while the feed is not current.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError, OperationalError

from backend.app.errors import database_error, database_unavailable, lookups_busy, request_not_found
from backend.app.observability import BATCHED, HELD_ANSWER_SECONDS, LOOKUP_DATABASE_READS
from backend.app.outages import DATABASE_OUTAGES
from backend.door.campaign_cache import CampaignCache
from backend.door.decisions import Decided, DecisionFeed, TooManyHeld, refusal
from backend.queries.participation import decision, line_position, place_among
from fcfs.claims import ClaimView
from fcfs.request_ids import IssuedRequest, RequestIdSigner

MAX_WAIT_S = 30.0
READS_QUEUED = 256  # look-ups waiting for a database read in one process at most: past it, 503 LOOKUPS_BUSY at once
CATCH_UP_S = 2.0  # a decided request's look-up waits this long at most for the feed to reach it, then reads
T = TypeVar("T")


class Lookups:
    def __init__(
        self,
        engine: Engine,
        signer: RequestIdSigner,
        feed: DecisionFeed,
        *,
        group: str,
        topic: str,
        max_wait_s: float = MAX_WAIT_S,
    ) -> None:
        self.engine = engine
        self.max_wait_s = max_wait_s
        self.signer = signer
        self.feed = feed
        self.group = group
        self.topic = topic
        self._executor = ThreadPoolExecutor(max_workers=8, thread_name_prefix="look-up")
        self._reads = 0  # look-ups reading the database or queued for it (bounded: a flood is refused, not queued)
        self.reads_max = READS_QUEUED
        self.campaigns: CampaignCache | None = None  # the windows: a request held in a pre-queue is answered at once

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)

    async def look_up(
        self,
        campaign_id: int,
        request_id: str,
        *,
        client: str,
        partition: int | None = None,
        offset: int | None = None,
        wait_s: float = 0.0,
    ) -> dict[str, Any]:
        """The request's state: decided, or PENDING (with `ahead`/`etaSeconds` given its ticket); with
        `wait_s`, held until its decision is published or the time is up."""
        issued = self.signer.verify(campaign_id, request_id)
        if issued is None:
            raise request_not_found()
        feed = self.feed
        feed.ask(campaign_id)
        known = feed.answers.get(request_id)
        if known is not None:
            return known.answer(request_id)
        window = None if self.campaigns is None else await self.campaigns.get(campaign_id)
        if window is not None and window.pre_queued(issued.issued_at_ms, time.time()):
            # not decided before the draw (known within a switch-log read of it): no read, or held for the draw
            drawn = await self._held(request_id, client, wait_s) if wait_s > 0 and feed.fresh() else None
            if drawn is not None:
                return drawn.answer(request_id)
            return {**(await self._pending(issued, campaign_id, request_id, None, None)), "preQueued": True}
        ticket = partition is not None and offset is not None
        if ticket:
            if not feed.following(campaign_id) or feed.pending_in_feed(campaign_id, partition, offset):
                await feed.current(campaign_id)  # a round at once if the feed does not follow it yet, or idles
            await feed.caught_up(campaign_id, partition, offset, CATCH_UP_S)  # (reading the campaign from its start)
            known = feed.answers.get(request_id)
            if known is not None:
                return known.answer(request_id)
        followed = feed.following(campaign_id)
        if not feed.pending_in_feed(campaign_id, partition, offset):
            found = await self._decision(request_id, campaign_id)
            if found is not None:
                return found.answer(request_id)
        wait_s = min(wait_s, self.max_wait_s)
        if wait_s > 0 and feed.fresh():
            if not followed:  # it may have been decided before the feed began to follow its campaign: once more
                await feed.current(campaign_id)
                if not feed.following(campaign_id):  # (a campaign placed by key: looked up, not held)
                    return await self._pending(issued, campaign_id, request_id, partition, offset)
                found = await self._decision(request_id, campaign_id)
                if found is not None:
                    return found.answer(request_id)
            held = await self._held(request_id, client, wait_s)
            if held is not None:
                return held.answer(request_id)
            if not feed.fresh():  # the feed stopped while we waited: the database says
                found = await self._decision(request_id, campaign_id)
                if found is not None:
                    return found.answer(request_id)
        return await self._pending(issued, campaign_id, request_id, partition, offset)

    async def _held(self, request_id: str, client: str, wait_s: float) -> Decided | None:
        """The request's decision if the feed publishes it within `wait_s` (bounded); None if not, or at once
        while the server stops."""
        if not self.feed.holding:
            return None
        try:
            with self.feed.hold(request_id, client) as decided:
                done, _ = await asyncio.wait((decided,), timeout=min(wait_s, self.max_wait_s))
                if not done or decided.cancelled():  # (cancelled: let go, the server stops)
                    return None
                at = self.feed.decided_at.pop(request_id, None)
                if at is not None:  # answered now: how long after the decision (the worker's commit included)
                    BATCHED.observe(HELD_ANSWER_SECONDS, max(time.time() - at, 0.0))
                return decided.result()
        except TooManyHeld as exc:
            raise refusal(exc) from None

    async def _decision(self, request_id: str, campaign_id: int) -> Decided | None:
        """Known to the feed by now, or read from the database (None: not decided)."""
        known = self.feed.answers.get(request_id)
        if known is not None:
            return known
        found = await self._from_database(request_id, campaign_id)
        return found if found is not None else self.feed.answers.get(request_id)  # (published meanwhile)

    async def _pending(
        self, issued: IssuedRequest, campaign_id: int, request_id: str, partition: int | None, offset: int | None
    ) -> dict[str, Any]:
        data: dict[str, Any] = {
            "requestId": request_id,
            "campaignId": campaign_id,
            "userId": issued.user_id,
            "status": "PENDING",
        }
        if issued.issued_at_ms is not None:  # a keyed id carries no time
            data["waitingMs"] = max(int(time.time() * 1000) - issued.issued_at_ms, 0)
        if partition is not None and offset is not None:
            if self.feed.fresh():
                data["ahead"], data["etaSeconds"] = self.feed.line(partition, offset)
            else:
                line = await self._read(
                    lambda: line_position(
                        self.engine, group=self.group, topic=self.topic, partition=partition, offset=offset
                    )
                )
                data["ahead"] = line.ahead
                data["etaSeconds"] = round(line.ahead / line.per_second, 1) if line.per_second else None
        return data

    async def _from_database(self, request_id: str, campaign_id: int) -> Decided | None:
        """The request's decision read from the database (then kept by the feed's answers), None if not decided."""
        row = await self._read(lambda: decision(self.engine, request_id=request_id))
        if row is None:
            return None
        place, winners = await self._read(lambda: place_among(self.engine, campaign_id=campaign_id, decided=row))
        decided = Decided(
            campaign_id,
            row.user_id,
            row.status.value,
            place,
            winners,
            row.kafka_partition,
            row.kafka_offset,
            row.promoted_at is not None,
        )
        if row.deadline is not None:
            decided = decided.claimed(ClaimView.of(row.deadline, row.claimed_at, row.released_at, row.claim_promoted))
        self.feed.answers.put(request_id, decided)
        return decided

    async def _read(self, read: Callable[[], T]) -> T:
        if self._reads >= self.reads_max:  # (the event loop's own counter: no lock needed)
            raise lookups_busy(self.reads_max)
        LOOKUP_DATABASE_READS.inc()
        self._reads += 1
        try:
            return await asyncio.get_running_loop().run_in_executor(self._executor, read)
        except OperationalError:
            DATABASE_OUTAGES.note()
            raise database_unavailable() from None
        except DBAPIError:
            raise database_error() from None
        finally:
            self._reads -= 1
