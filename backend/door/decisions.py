"""What an API process knows of the worker's decisions, learned in bulk: the decision feed.

The worker writes a partition's decisions and its next offset in one transaction (I4), so the rows of a
partition below its stored next offset are all there will ever be below it. The feed follows the campaigns
people ask about (looked up in the last FOLLOW_FOR_S, at most FOLLOWED): every interval it reads the stored
next offsets (one small query) and, for each followed campaign whose partition moved, the campaign's new
rows as one range of the index `(campaign_id, kafka_offset)`. Its cost grows with the decisions of the
campaigns people wait for, not with everything the workers decide, nor with how many people wait. From it:

- `answers`: the look-up's answer of every decided request of a followed campaign (the newest
  `DECIDED_CACHE_SIZE`; others are read from the database once, then kept too), so polling a decided request
  costs no database read;
- `hold()`: a look-up with `waitSeconds` waits on a future that the feed resolves on the event loop when its
  request's decision is published — no database read per held request, however many are held;
- `line()`: how far the worker is in the request's partition and how fast it moves (`ahead`, `etaSeconds`);
- the claims of a campaign whose winners must claim: its `claim` rows (one per win, a small table) read whole
  when the feed begins to follow it, then those changed since the last round (claimed, released, promoted), each
  changing its request's answer (SUCCESS with its claim, RELEASED, a FAIL promoted).

A campaign newly followed is read from its first request on (its places counted here, its answers kept),
then as its requests are decided: a look-up says "not decided" from the feed only at or above the stored
next offset of the campaign's partition when the feed began to follow it (`since`) and above what it has
published; below, the answer is published or the database says. Decisions are published on the event loop,
and a look-up checks and registers on the event loop without an await in between, so no decision falls
between a look-up's check and its wait.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import math
import time
from collections import Counter, deque
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from queue import SimpleQueue
from typing import Any, NamedTuple

from sqlalchemy import Engine, select
from sqlalchemy.engine import Connection

from backend.app.errors import ApiError, too_many_waiting, waiting_full
from backend.app.observability import DECISIONS_LEARNED, LOOKUPS_HELD
from fcfs.claims import ClaimView
from fcfs.db import utcnow
from fcfs.schema import campaign, consumer_offset

log = logging.getLogger(__name__)
READ_ROWS = 5_000  # rows per range query
PUBLISH_ROWS = 10_000  # rows per feed round at most (the rest in the next round, at once): published in waves
ROWS = (
    "SELECT request_id, user_id, status, kafka_offset, promoted_at IS NOT NULL, decided_at "
    "FROM participation_history WHERE campaign_id = %s AND kafka_offset >= %s AND kafka_offset < %s "
    "ORDER BY kafka_offset LIMIT %s"
)
DRAWN = (  # the campaigns' pre-queues drawn in the order of a draw: when, and up to which offset it decided
    "SELECT c.id, c.drawn_at, (SELECT MAX(q.kafka_offset) FROM pre_queue q WHERE q.campaign_id = c.id) "
    "FROM campaign c WHERE c.id IN ({}) AND c.pre_queue_order = 'DRAW' AND c.drawn_at IS NOT NULL"
)
DRAWN_ROWS = (  # a drawn pre-queue's history rows, written in the draw's order (their ids keep it), all decided at
    # the draw: pages of the index (campaign_id, decided_at), which holds them by id
    "SELECT request_id, user_id, status, kafka_offset, promoted_at IS NOT NULL, id, decided_at "
    "FROM participation_history WHERE campaign_id = %s AND decided_at = %s AND id > %s AND kafka_offset <= %s "
    "ORDER BY decided_at, id LIMIT %s"
)
RATE_WINDOW_S = 10.0  # a partition's decision rate: its progress over about this long
IDLE_INTERVAL_S = 1.0  # the rounds' interval while nothing moves and nobody waits
FOLLOW_FOR_S = 600.0  # a campaign is followed this long after its last look-up
FOLLOWED = 1000  # campaigns followed at most (the ones asked about most lately)
CLAIMS = (
    "SELECT request_id, deadline, claimed_at, released_at, promoted FROM claim WHERE campaign_id = %s "
    "AND changed_at >= %s"
)
CLAIMS_OVERLAP = dt.timedelta(seconds=10)  # claims changed since the last round's read, and this long before it:
# a change is committed after its changed_at (and API hosts' clocks may differ a little); re-reading is harmless


class Decided(NamedTuple):
    """One decided request, as the look-up tells it (a tuple: a process keeps hundreds of thousands)."""

    campaign_id: int
    user_id: int
    status: str
    place: int
    winners_before: int
    partition: int | None
    offset: int | None
    promoted: bool = False  # a FAIL that won later: a unit released, or stock added
    claim: ClaimView | None = None  # a win of a campaign whose winners must claim

    def claimed(self, view: ClaimView) -> Decided:
        """This decision with its win's claim as it is now (released: RELEASED; a FAIL promoted: SUCCESS)."""
        status = "RELEASED" if view.state == "RELEASED" else "SUCCESS"
        return self._replace(status=status, promoted=self.promoted or view.promoted, claim=view)

    def answer(self, request_id: str) -> dict[str, Any]:
        answer = {
            "requestId": request_id,
            "campaignId": self.campaign_id,
            "userId": self.user_id,
            "status": self.status,
            "place": self.place,
            "winnersBefore": self.winners_before,
            "partition": self.partition,
            "offset": self.offset,
            "promoted": self.promoted,
        }
        if self.claim is not None:
            answer["claim"] = self.claim.json()
        return answer


class Drawn(NamedTuple):
    """A followed campaign's pre-queue drawn by DRAW: its history rows up to `last_offset` go in the draw's order."""

    at: dt.datetime  # when (every row of the draw was decided then)
    last_offset: int
    after_id: int = 0  # read up to this row so far


class Answers:
    """Decided requests by id, at most `size`; when full, the older half goes at once (dicts keep order)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._by_id: dict[str, Decided] = {}

    def __len__(self) -> int:
        return len(self._by_id)

    def get(self, request_id: str) -> Decided | None:
        return self._by_id.get(request_id)

    def put(self, request_id: str, decided: Decided) -> None:
        if len(self._by_id) >= self.size:
            for old in list(self._by_id)[: max(self.size // 2, 1)]:
                del self._by_id[old]
        self._by_id[request_id] = decided


@dataclass(frozen=True, slots=True)
class Followed:
    """A campaign the feed follows: its partition, where following began, and how far it is published."""

    partition: int
    since: int  # its requests at or above this offset are published as they are decided
    position: int  # every decision of the campaign below this offset is published


class Round(NamedTuple):
    """What one feed round read: each partition's stored next offset, the followed campaigns, the rows."""

    stored: dict[int, int]
    followed: dict[int, Followed]
    decided: list[tuple[str, Decided]]
    more: bool  # rows left for the next round (the round read PUBLISH_ROWS)
    claims: tuple[tuple[str, ClaimView], ...] = ()  # wins whose claim changed: their answers change
    decided_at: tuple[dt.datetime, ...] = ()  # when each of `decided` was decided (UTC, naive), in the same order


class TooManyHeld(Exception):
    """A held look-up over a bound: `per_client` True for the client's bound, False for the process's."""

    def __init__(self, per_client: bool, limit: int) -> None:
        super().__init__(limit)
        self.per_client = per_client
        self.limit = limit


class DecisionFeed:
    def __init__(
        self,
        engine: Engine,
        *,
        group: str,
        topic: str,
        interval_s: float,
        cache_size: int,
        held_max: int,
        held_per_client: int,
    ) -> None:
        self.engine = engine
        self.group = group
        self.topic = topic
        self.interval_s = interval_s
        self.answers = Answers(cache_size)
        self.held_max = held_max
        self.held_per_client = held_per_client
        # on the event loop: what the last round published, who asks and who waits
        self._stored: dict[int, int] = {}
        self._followed: dict[int, Followed] = {}
        self._asked: dict[int, float] = {}  # campaign -> when it was last looked up (monotonic)
        self._progress: dict[int, deque[tuple[float, int]]] = {}  # per partition: (when, stored next offset)
        self._fresh_until = 0.0  # monotonic: the feed is current until then (a round went through lately)
        self._round_at = float("-inf")  # monotonic: when the last round was published
        self._next_round: list[asyncio.Future[None]] = []  # look-ups waiting for a round
        self._waiters: dict[str, list[asyncio.Future[Decided]]] = {}
        # held requests just decided -> when (epoch seconds): how long after its decision a held look-up answers
        self.decided_at: dict[str, float] = {}
        self._held_by: Counter[str] = Counter()
        self.held = 0
        self.holding = True  # False once the server stops: held look-ups are answered, none is held any more
        # in the feed's thread only: each followed campaign's reading and running places
        self._reading: dict[int, Followed] = {}
        self._places: dict[int, tuple[int, int]] = {}  # campaign -> (requests decided so far, winners so far)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="decision-feed")
        self._task: asyncio.Task[None] | None = None
        self._wake: asyncio.Event | None = None  # a round at once (somebody asks about a campaign not followed)
        self._last_stored: dict[int, int] = {}
        self._refollow: SimpleQueue[int] = SimpleQueue()  # campaigns to read again from their first request
        self._claiming: set[int] = set()  # (feed thread) followed campaigns whose winners must claim
        self._claims: dict[int, dict[str, ClaimView]] = {}  # (feed thread) their wins' claims, by request id
        self._claims_read: dict[int, dt.datetime] = {}  # (feed thread) when their claims were read last
        self._drawn: dict[int, Drawn] = {}  # (feed thread) campaigns drawn by DRAW: their pre-queue's block

    # -- the feed -----------------------------------------------------------------------------------------

    def start(self) -> None:
        self._wake = asyncio.Event()
        self._task = asyncio.get_running_loop().create_task(self._run(), name="decision-feed")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with suppress(asyncio.CancelledError):
                await self._task
        self._executor.shutdown(wait=True, cancel_futures=True)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        failing = False
        while True:
            now = time.monotonic()
            asked = {c for c, at in self._asked.items() if now - at < FOLLOW_FOR_S}
            if len(asked) > FOLLOWED:
                asked = set(sorted(asked, key=self._asked.__getitem__)[-FOLLOWED:])
            self._asked = {c: self._asked[c] for c in asked}
            try:
                round_ = await loop.run_in_executor(self._executor, self.read_round, asked)
            except Exception as exc:  # noqa: BLE001 - the database may be away; look-ups fall back to it meanwhile
                if not failing:
                    log.warning("decision feed: cannot read the decisions (look-ups read the database): %s", exc)
                failing = True
                await asyncio.sleep(max(self.interval_s, 1.0))
                continue
            if failing:
                log.info("decision feed: reading the decisions again")
                failing = False
            self.publish(round_)
            if round_.more:
                continue
            moved, self._last_stored = round_.stored != self._last_stored, round_.stored
            # every interval while decisions come or somebody waits; otherwise once a second (or at once when
            # a look-up asks about a campaign not followed yet)
            await self._pause(self.interval_s if moved or self.held else max(self.interval_s, IDLE_INTERVAL_S))

    async def _pause(self, seconds: float) -> None:
        assert self._wake is not None
        with suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), seconds)
        self._wake.clear()

    def read_round(self, asked: set[int]) -> Round:
        """In the feed's thread: the stored next offsets, then each followed campaign's new rows (in log order).
        What it follows changes only once the whole round is read."""
        refollowed: set[int] = set()
        while not self._refollow.empty():  # their earlier answers changed (stock added, a draw): read them again
            refollowed.add(self._refollow.get_nowait())
        with self.engine.connect() as conn:
            stored = {
                int(p): int(n)
                for p, n in conn.execute(
                    select(consumer_offset.c.partition_id, consumer_offset.c.next_offset).where(
                        consumer_offset.c.consumer_group == self.group, consumer_offset.c.topic == self.topic
                    )
                )
            }
            new = sorted(asked - self._reading.keys())
            partitions = {}
            if new:
                for c, p, claim_seconds in conn.execute(
                    select(campaign.c.id, campaign.c.kafka_partition, campaign.c.claim_seconds).where(
                        campaign.c.id.in_(new)
                    )
                ):
                    partitions[int(c)] = p
                    if claim_seconds:
                        self._claiming.add(int(c))
            self._read_drawn(conn, set(new) | (refollowed & self._reading.keys()))
        reading = {c: f for c, f in self._reading.items() if c in asked}
        places = {c: p for c, p in self._places.items() if c in reading}
        for again in refollowed & reading.keys():  # "not decided" only above what was published before; re-read
            reading[again] = Followed(reading[again].partition, reading[again].position, 0)
            places[again] = (0, 0)
        for c in new:
            if partitions.get(c) is not None:  # (a campaign without one goes by key: not followed, read on demand)
                # read from its first request on, so every place is counted here (and the answers kept)
                reading[c] = Followed(partitions[c], stored.get(partitions[c], 0), 0)
                places[c] = (0, 0)
        decided: list[tuple[str, Decided]] = []
        moments: list[dt.datetime] = []
        for c, followed in reading.items():
            end = stored.get(followed.partition, 0)
            cursor = followed.position
            while cursor < end and len(decided) < PUBLISH_ROWS:
                read, at, cursor = self._read(c, followed.partition, cursor, end, places)
                decided += read
                moments += at
            reading[c] = Followed(followed.partition, followed.since, cursor)
        more = any(f.position < stored.get(f.partition, 0) for f in reading.values())
        self._reading, self._places = reading, places
        self._drawn = {c: last for c, last in self._drawn.items() if c in reading}
        claims = self._read_claims(set(reading), again=set(new))
        if claims is not None:  # (the rows just read, as their claims say now: read after them, so none missing)
            decided = [
                (r, d.claimed(self._claims[d.campaign_id][r])) if self._claim_of(d, r) else (r, d) for r, d in decided
            ]
        return Round(stored, dict(reading), decided, more, tuple(claims or ()), tuple(moments))

    def _read_drawn(self, conn: Connection, campaign_ids: set[int]) -> None:
        """In the feed's thread: which of these campaigns had their pre-queue drawn (DRAW), and its last offset."""
        for c in campaign_ids:
            self._drawn.pop(c, None)
        if campaign_ids:
            marks = ",".join(str(int(c)) for c in sorted(campaign_ids))
            for c, drawn_at, last in conn.exec_driver_sql(DRAWN.format(marks)):
                if last is not None:
                    self._drawn[int(c)] = Drawn(drawn_at, int(last))

    def _claim_of(self, decided: Decided, request_id: str) -> bool:
        return request_id in self._claims.get(decided.campaign_id, ())

    def _read_claims(self, followed: set[int], again: set[int]) -> list[tuple[str, ClaimView]] | None:
        """In the feed's thread: the claims changed since the last read of the followed campaigns that need claims
        (all of them for a campaign newly followed); None when no followed campaign needs claims."""
        self._claiming &= followed
        self._claims = {c: v for c, v in self._claims.items() if c in self._claiming}
        self._claims_read = {c: t for c, t in self._claims_read.items() if c in self._claiming and c not in again}
        if not self._claiming:
            return None
        changed: list[tuple[str, ClaimView]] = []
        with self.engine.connect() as conn:
            for c in sorted(self._claiming):
                changed += self._changed_claims(conn, c)
        return changed

    def _changed_claims(self, conn: Connection, campaign_id: int) -> list[tuple[str, ClaimView]]:
        now = utcnow()
        since = self._claims_read.get(campaign_id)
        rows = conn.exec_driver_sql(CLAIMS, (campaign_id, dt.datetime.min if since is None else since - CLAIMS_OVERLAP))
        self._claims_read[campaign_id] = now
        views = self._claims.setdefault(campaign_id, {})
        changed = []
        for request_id, deadline, claimed_at, released_at, promoted in rows:
            view = ClaimView.of(deadline, claimed_at, released_at, promoted)
            if views.get(request_id) != view:
                views[request_id] = view
                changed.append((request_id, view))
        return changed

    def _read(
        self, campaign_id: int, partition: int, start: int, end: int, places: dict[int, tuple[int, int]]
    ) -> tuple[list[tuple[str, Decided]], list[dt.datetime], int]:
        """The campaign's decided requests in [start, end) of the log (READ_ROWS at most), each with its place — a
        campaign's rows come in log order (one partition, one worker at a time) and are read from its first one
        on, so each place is the previous one + 1 —, when each was decided, and where the next read starts. Plain
        tuples from the driver: the feed reads every decision of the campaigns people wait for."""
        drawn = self._drawn.get(campaign_id) if start == 0 else None
        with self.engine.connect() as conn:
            if drawn is not None:  # a drawn pre-queue first, in the draw's order, a page at a time
                page = (campaign_id, drawn.at, drawn.after_id, drawn.last_offset, READ_ROWS)
                rows = conn.exec_driver_sql(DRAWN_ROWS, page).all()
            else:
                rows = conn.exec_driver_sql(ROWS, (campaign_id, start, end, READ_ROWS)).all()
        count, winners = places[campaign_id]
        decided = []
        for request_id, user_id, status, offset, promoted, *_ in rows:
            count += 1
            decided.append(
                (request_id, Decided(campaign_id, user_id, status, count, winners, partition, offset, bool(promoted)))
            )
            winners += status == "SUCCESS"
        places[campaign_id] = (count, winners)
        moments = [row[-1] for row in rows]
        if drawn is not None:  # the block's next page, or past it
            if len(rows) == READ_ROWS:
                self._drawn[campaign_id] = drawn._replace(after_id=rows[-1][5])
                return decided, moments, 0
            return decided, moments, drawn.last_offset + 1
        return decided, moments, rows[-1][3] + 1 if len(rows) == READ_ROWS else end

    def publish(self, round_: Round) -> None:
        """On the event loop: the round's decisions become answers and wake their held look-ups."""
        now = time.monotonic()
        for partition, next_offset in round_.stored.items():
            progress = self._progress.setdefault(partition, deque())
            progress.append((now, next_offset))
            while len(progress) > 2 and now - progress[1][0] >= RATE_WINDOW_S:
                progress.popleft()
        self._stored, self._followed = round_.stored, round_.followed
        answers = self.answers
        waiters = self._waiters
        moments = round_.decided_at
        if len(self.decided_at) > 2 * self.held_max + 1000:  # (entries of look-ups gone before reading theirs)
            self.decided_at.clear()
        for n, (request_id, decided) in enumerate(round_.decided):
            answers.put(request_id, decided)
            held = waiters.pop(request_id, None)
            if held is not None:
                if n < len(moments):
                    self.decided_at[request_id] = moments[n].replace(tzinfo=dt.UTC).timestamp()
                for future in held:
                    if not future.done():
                        future.set_result(decided)
        for request_id, view in round_.claims:  # claimed, released, promoted since: the answers kept change
            known = answers.get(request_id)
            if known is not None:
                answers.put(request_id, known.claimed(view))
        self._fresh_until = now + 3 * max(self.interval_s, IDLE_INTERVAL_S)  # a few rounds missed: not current
        self._round_at = now
        asked, self._next_round = self._next_round, []
        for round_done in asked:
            if not round_done.done():
                round_done.set_result(None)
        if round_.decided:
            DECISIONS_LEARNED.inc(len(round_.decided))

    # -- what a look-up asks ------------------------------------------------------------------------------

    def refollow(self, campaign_id: int) -> None:
        """The campaign's decided answers changed (stock added: FAILs promoted): the next round reads it again from
        its first request, replacing every answer kept. From any thread."""
        self._refollow.put(campaign_id)

    def ask(self, campaign_id: int) -> None:
        """A look-up of the campaign: followed from the next round on (asking again keeps it followed)."""
        known = campaign_id in self._asked
        self._asked[campaign_id] = time.monotonic()
        if not known and self._wake is not None:
            self._wake.set()

    def fresh(self) -> bool:
        """Whether the feed is current (a round went through lately): only then may it say "not decided"."""
        return time.monotonic() < self._fresh_until

    def following(self, campaign_id: int) -> bool:
        return campaign_id in self._followed

    async def current(self, campaign_id: int | None = None) -> None:
        """At most DECISION_FEED_INTERVAL_S old and, given a campaign, following it: otherwise wait for a round,
        asked for now (one round for all who ask; at most an idle interval)."""
        recent = time.monotonic() - self._round_at <= self.interval_s
        if self._wake is None or (recent and (campaign_id is None or campaign_id in self._followed)):
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._next_round.append(future)
        self._wake.set()
        with suppress(TimeoutError):
            await asyncio.wait_for(future, IDLE_INTERVAL_S + self.interval_s)

    async def caught_up(self, campaign_id: int, partition: int | None, offset: int | None, timeout_s: float) -> None:
        """While the feed reads a newly followed campaign from its start, a ticket it has not reached yet waits
        for it (rounds follow each other at once then), at most `timeout_s`: its answer is coming, no need to
        read the database for it."""
        deadline = time.monotonic() + timeout_s
        while True:
            followed = self._followed.get(campaign_id)
            left = deadline - time.monotonic()
            if (
                followed is None
                or partition != followed.partition
                or offset is None
                or not followed.position <= offset < followed.since
                or left <= 0
            ):
                return
            round_done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._next_round.append(round_done)
            with suppress(TimeoutError):
                await asyncio.wait_for(round_done, left)

    def pending_in_feed(self, campaign_id: int, partition: int | None, offset: int | None) -> bool:
        """Whether the feed alone can say the request with this ticket is not decided yet: the campaign followed
        since before the ticket, on the ticket's partition, and nothing of it published at or past the ticket."""
        followed = self._followed.get(campaign_id)
        return (
            followed is not None
            and partition == followed.partition
            and offset is not None
            and offset >= max(followed.since, followed.position)
            and self.fresh()
        )

    def published_in_feed(self, campaign_id: int, partition: int | None, offset: int | None) -> bool:
        """Whether the request with this ticket was decided while the campaign was followed (so its answer was
        published: in `answers` unless evicted since)."""
        followed = self._followed.get(campaign_id)
        return (
            followed is not None
            and partition == followed.partition
            and offset is not None
            and followed.since <= offset < followed.position
        )

    def rate(self, partition: int) -> float | None:
        """The partition's decisions per second lately (its stored offset's progress); None: not known."""
        progress = self._progress.get(partition)
        if not progress or len(progress) < 2:
            return None
        (t0, n0), (t1, n1) = progress[0], progress[-1]
        return (n1 - n0) / (t1 - t0) if t1 - t0 >= 1.0 else None

    def line(self, partition: int, offset: int) -> tuple[int, float | None]:
        """(`ahead`, `etaSeconds`) of a pending ticket: the partition's messages the workers have still to
        decide before it, and when at the partition's recent rate."""
        ahead = max(offset - self._stored.get(partition, 0), 0)
        rate = self.rate(partition)
        eta = round(ahead / rate, 1) if rate else (0.0 if ahead == 0 and rate is not None else None)
        return ahead, eta if eta is None or math.isfinite(eta) else None

    def stop_holding(self) -> None:
        """The server stops: every held look-up is let go at once (its future cancelled: it answers PENDING, and
        the participant asks again of a process that is up), and none is held from now on."""
        self.holding = False
        log.info("asked to stop: %d held look-ups answered now, none held from here on", self.held)
        for futures in self._waiters.values():
            for future in futures:
                future.cancel()

    @contextmanager
    def hold(self, request_id: str, client: str) -> Iterator[asyncio.Future[Decided]]:
        """A future resolved with the request's decision when the feed publishes it (the caller bounds the
        wait). Raises TooManyHeld past the process's or the client's bound."""
        if self.held >= self.held_max:
            raise TooManyHeld(False, self.held_max)
        if self._held_by[client] >= self.held_per_client:
            raise TooManyHeld(True, self.held_per_client)
        future: asyncio.Future[Decided] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(request_id, []).append(future)
        self._held_by[client] += 1
        self.held += 1
        LOOKUPS_HELD.inc()
        try:
            yield future
        finally:
            self.held -= 1
            LOOKUPS_HELD.dec()
            left = self._held_by[client] - 1
            if left:
                self._held_by[client] = left
            else:
                del self._held_by[client]
            held = self._waiters.get(request_id)
            if held is not None:
                with suppress(ValueError):
                    held.remove(future)
                if not held:
                    del self._waiters[request_id]
            future.cancel()


def refusal(exc: TooManyHeld) -> ApiError:
    """429 TOO_MANY_WAITING for a client over its bound, 503 WAITING_FULL for a process over its own."""
    return too_many_waiting(exc.limit) if exc.per_client else waiting_full(exc.limit)
