"""The participation ledger: decide requests against a locked campaign and record them with the counters.

Shared by the worker (a batch from Kafka, see worker/store.py) and the API's synchronous path
(`decide_now`: one request, one transaction)."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import NamedTuple

from sqlalchemy import Connection, Engine

from fcfs.campaigns import CampaignStatus, window_refusal
from fcfs.claims import open_claims
from fcfs.db import placeholders, utcnow
from fcfs.decision import Tally, decide_batch
from fcfs.epoch import epoch_us, from_epoch_s
from fcfs.events import ParticipationEvent
from fcfs.schema import Channel, Outcome, PreQueueOrder


@dataclass(frozen=True, slots=True)
class Delivered:
    """A valid event with its place in the log."""

    event: ParticipationEvent
    partition: int
    offset: int
    raw: bytes = b""
    key: bytes | None = None


class UnknownCampaign(LookupError):
    """No campaign has this id."""


class WrongChannel(Exception):
    """The campaign takes part through the other door (I7)."""

    def __init__(self, mode: Channel) -> None:
        super().__init__(mode.value)
        self.mode = mode


class CampaignClosed(Exception):
    """The campaign does not take part now (not started, or ended)."""

    def __init__(self, status: CampaignStatus) -> None:
        super().__init__(status.value)
        self.status = status


class CampaignPaused(Exception):
    """An operator paused the campaign: its doors take nothing until it is resumed."""


@dataclass(slots=True)
class BatchResult:
    """How many requests a batch decided, how (and how many it skipped as already recorded)."""

    decided: int = 0
    redelivered: int = 0
    successes: int = 0
    fails: int = 0
    duplicates: int = 0
    held: int = 0  # held in a pre-queue, to be decided at its draw (not decided yet)

    def add(self, other: BatchResult) -> None:
        self.decided += other.decided
        self.redelivered += other.redelivered
        self.successes += other.successes
        self.fails += other.fails
        self.duplicates += other.duplicates
        self.held += other.held


# The hot path is plain SQL with %s parameters: no statement is built or compiled per batch, and
# PyMySQL folds a list of parameter tuples for an INSERT into one multi-row statement.


class Locked(NamedTuple):
    """A locked campaign row: what deciding needs."""

    stock: int
    mode: str
    partition: int | None  # where its requests belong (None: by key, placed before placement existed)
    claim_seconds: int = 0  # each win's claim window (0: no claim needed)
    opens_ms: int | None = None  # a pre-queue not drawn yet: the campaign's start, epoch ms (fcfs/draw.py)
    pre_queue_order: PreQueueOrder = PreQueueOrder.FIFO
    draw_seed: str | None = None


LOCK_CAMPAIGNS = (
    "SELECT id, current_stock, mode, kafka_partition, claim_seconds, "
    "IF(pre_queue_seconds > 0 AND drawn_at IS NULL, starts_at, NULL), pre_queue_order, draw_seed FROM campaign "
    "WHERE id IN ({}) ORDER BY id FOR UPDATE"
)


def lock_campaigns(conn: Connection, campaign_ids: Iterable[int]) -> dict[int, Locked]:
    """Lock the campaigns' rows (in id order, so workers never deadlock); what deciding their requests needs."""
    ids = sorted(set(campaign_ids))
    if not ids:
        return {}
    rows = conn.exec_driver_sql(LOCK_CAMPAIGNS.format(placeholders(len(ids))), tuple(ids))
    return {
        campaign_id: Locked(
            stock,
            mode,
            partition,
            claim,
            None if opens is None else epoch_us(opens) // 1000,
            PreQueueOrder(order),
            seed,
        )
        for campaign_id, stock, mode, partition, claim, opens, order, seed in rows
    }


def prior_participants(conn: Connection, campaign_id: int, user_ids: Iterable[int]) -> set[int]:
    """The users among these who already took part in the campaign (their first attempt is recorded)."""
    users = sorted(set(user_ids))
    if not users:
        return set()
    rows = conn.exec_driver_sql(
        "SELECT participant_user_id FROM participation_history "
        f"WHERE campaign_id = %s AND participant_user_id IN ({placeholders(len(users))})",
        (campaign_id, *users),
    )
    return {user for (user,) in rows}


HISTORY_COLUMNS = (
    "request_id, campaign_id, user_id, status, channel, kafka_partition, kafka_offset, requested_at, decided_at"
)
UPDATE_COUNTERS = (
    "UPDATE campaign SET current_stock = %s, success_count = success_count + %s, fail_count = fail_count + %s, "
    "duplicate_count = duplicate_count + %s, sold_out_at = COALESCE(%s, sold_out_at) WHERE id = %s"
)
RECORD_SECOND = (
    "INSERT INTO campaign_second (campaign_id, `second`, success_count, fail_count, duplicate_count, stock_after) "
    "VALUES (%s, %s, %s, %s, %s, %s) ON DUPLICATE KEY UPDATE "
    "success_count = success_count + VALUES(success_count), fail_count = fail_count + VALUES(fail_count), "
    "duplicate_count = duplicate_count + VALUES(duplicate_count), stock_after = LEAST(stock_after, VALUES(stock_after))"
)
_PLAIN_TEXT = re.compile(r"[A-Za-z0-9._~-]*")


@lru_cache(maxsize=4096)
def _second_text(epoch_s: int) -> str:
    return from_epoch_s(epoch_s).strftime("'%Y-%m-%d %H:%M:%S")


def _ms_text(epoch_ms: int) -> str:
    """Epoch milliseconds as a quoted DATETIME(6) literal (the second's text is cached: requests come in bursts)."""
    seconds, ms = divmod(epoch_ms, 1000)
    return f"{_second_text(seconds)}.{ms:03d}000'"


def history_values(
    conn: Connection,
    campaign_id: int,
    events: Sequence[Delivered],
    outcomes: Sequence[Outcome],
    channel: Channel,
    decided_at: dt.datetime,
) -> str:
    """The VALUES list of the history rows of one multi-row INSERT, written here rather than by the driver.

    Every value is an int, a constant of this module or a timestamp formatted here, except the request
    id: it is quoted as is only when it is plain `[A-Za-z0-9._~-]` text (the ids this system issues),
    otherwise by the driver's own escaping. This is the worker's hottest loop; it takes a third of the
    CPU of PyMySQL's per-value escaping.
    """
    escape = conn.connection.dbapi_connection.escape  # type: ignore[union-attr]
    head = f"{campaign_id},"
    decided = f"'{decided_at:%Y-%m-%d %H:%M:%S.%f}'"
    kafka = channel is Channel.KAFKA
    via = f"'{channel.value}'"
    rows = []
    for d, outcome in zip(events, outcomes, strict=True):
        e = d.event
        rid = e.request_id
        # (the statement goes through the driver's %-formatting with no parameters: a % is written %%)
        quoted = f"'{rid}'" if _PLAIN_TEXT.fullmatch(rid) else escape(rid).replace("%", "%%")
        place = f"{d.partition},{d.offset}" if kafka else "NULL,NULL"
        rows.append(
            f"({quoted},{head}{e.user_id},'{outcome.value}',{via},{place},{_ms_text(e.requested_at_ms)},{decided})"
        )
    return ",".join(rows)


def decide_now(engine: Engine, event: ParticipationEvent) -> Outcome:
    """Decide one request at once, in one transaction that holds its campaign's row lock (synchronous path).

    Raises UnknownCampaign, WrongChannel for a campaign of the Kafka door, CampaignClosed outside the
    campaign's window, or CampaignPaused while its operators have paused it. A request already recorded (a
    retry with the same idempotency key, hence the same id) is not decided again: its recorded outcome is the
    answer.
    """
    with engine.begin() as conn:
        row = conn.exec_driver_sql(
            "SELECT current_stock, starts_at, ends_at, mode, paused, claim_seconds FROM campaign WHERE id = %s "
            "FOR UPDATE",
            (event.campaign_id,),
        ).first()
        if row is None:
            raise UnknownCampaign(event.campaign_id)
        if row.mode != Channel.SYNC.value:
            raise WrongChannel(Channel(row.mode))
        recorded = conn.exec_driver_sql(
            "SELECT status FROM participation_history WHERE request_id = %s", (event.request_id,)
        ).scalar()
        if recorded is not None:
            return Outcome(recorded)
        refusal = window_refusal(row.starts_at, row.ends_at, utcnow())
        if refusal is not None:
            raise CampaignClosed(refusal)
        if row.paused:
            raise CampaignPaused(event.campaign_id)
        outcomes, _ = record_decisions(
            conn,
            event.campaign_id,
            row.current_stock,
            [Delivered(event, -1, -1)],
            Channel.SYNC,
            None,
            row.claim_seconds,
        )
    return outcomes[0]


def record_decisions(
    conn: Connection,
    campaign_id: int,
    stock: int,
    events: Sequence[Delivered],
    channel: Channel,
    now: dt.datetime | None = None,
    claim_seconds: int = 0,
) -> tuple[list[Outcome], BatchResult]:
    """Decide `events` (one campaign, log order, campaign row locked), insert history, update counters; with
    `claim_seconds`, open each win's claim window (fcfs/claims.py)."""
    now = now or utcnow()
    prior = prior_participants(conn, campaign_id, (d.event.user_id for d in events))
    tally = decide_batch(stock, prior, (d.event.user_id for d in events))
    conn.exec_driver_sql(
        f"INSERT INTO participation_history ({HISTORY_COLUMNS}) VALUES "
        + history_values(conn, campaign_id, events, tally.outcomes, channel, now)
    )
    if claim_seconds and tally.successes:
        won = [d.event.request_id for d, o in zip(events, tally.outcomes, strict=True) if o is Outcome.SUCCESS]
        open_claims(conn, column="request_id", keys=won, now=now, claim_seconds=claim_seconds, promoted=False)
    sold_out_at = now if stock > 0 and tally.stock_left == 0 else None
    conn.exec_driver_sql(
        UPDATE_COUNTERS,
        (tally.stock_left, tally.successes, tally.fails, tally.duplicates, sold_out_at, campaign_id),
    )
    record_second(conn, campaign_id, now, tally)
    result = BatchResult(len(events), 0, tally.successes, tally.fails, tally.duplicates)
    return tally.outcomes, result


def record_second(conn: Connection, campaign_id: int, now: dt.datetime, tally: Tally) -> None:
    """Add a batch's decisions to the campaign's per-second counts (the dashboard's curves)."""
    conn.exec_driver_sql(
        RECORD_SECOND,
        (
            campaign_id,
            now.replace(microsecond=0),
            tally.successes,
            tally.fails,
            tally.duplicates,
            tally.stock_left,
        ),
    )
