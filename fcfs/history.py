"""Realistic participation history, written fast: for statistics, experiments and a demo on a fresh install.

N campaigns a day over D days, each a one-day FCFS event: a burst of requests when it opens that
dies down over the day, about 15% of them repeats by people who already clicked, decided by the same
rule as the worker (`fcfs.decision`), so counters, sell-out times and constraints hold as in real
data. Rows are bulk-loaded with LOAD DATA LOCAL INFILE (multi-row INSERTs where the server refuses it).

The command `python -m bench.generate` and the admin action `POST /api/admin/demo/history` use it.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import random
import tempfile
import time
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

import pymysql
from sqlalchemy import Engine, create_engine

from fcfs.days import day_bounds, days_between
from fcfs.decision import decide_batch
from fcfs.epoch import epoch_us, from_epoch_us
from fcfs.schema import Outcome

log = logging.getLogger(__name__)
STOCKS = (50, 100, 200, 500, 1000, 2000)
REPEAT_SHARE = 0.15
LOAD_COLUMNS = "(request_id, campaign_id, user_id, status, channel, kafka_partition, kafka_offset, @req_us, @dec_us)"


@dataclass
class Generated:
    campaign_ids: list[int]
    rows: int
    seconds: float

    @property
    def campaigns(self) -> int:
        return len(self.campaign_ids)

    @property
    def rows_per_s(self) -> float:
        return self.rows / self.seconds if self.seconds else 0.0


def arrival_offsets_us(rng: random.Random, n: int, span_us: int) -> list[int]:
    """Request arrival times after the opening: most within seconds, a tail over the rest of the day."""
    offsets = []
    for _ in range(n):
        kind = rng.random()
        if kind < 0.70:
            seconds = rng.expovariate(1 / 3.0)  # the opening rush
        elif kind < 0.95:
            seconds = rng.expovariate(1 / 120.0)  # latecomers
        else:
            seconds = rng.random() * span_us / 1e6  # the rest of the day
        offsets.append(min(int(seconds * 1e6), span_us - 1))
    offsets.sort()
    return offsets


def campaign_requests(rng: random.Random, n: int, next_user: int) -> tuple[list[int], int]:
    """`n` user ids in arrival order, about REPEAT_SHARE of them repeats; returns them and the next free id."""
    users: list[int] = []
    for _ in range(n):
        if users and rng.random() < REPEAT_SHARE:
            users.append(users[rng.randrange(len(users))])
        else:
            users.append(next_user)
            next_user += 1
    return users, next_user


def campaign_sizes(rng: random.Random, rows: int, campaigns: int, jitter: float) -> list[int]:
    """`campaigns` sizes adding up to `rows` exactly (or one each when there are fewer rows than campaigns),
    each the average give or take `jitter` before rounding."""
    if rows <= campaigns:
        return [1] * campaigns
    weights = [rng.uniform(1 - jitter, 1 + jitter) for _ in range(campaigns)]
    scale = (rows - campaigns) / sum(weights)
    sizes = [1 + int(w * scale) for w in weights]
    for i in range(rows - sum(sizes)):  # what rounding down left over, one row each to the first campaigns
        sizes[i % campaigns] += 1
    return sizes


def generate_history(
    engine: Engine,
    *,
    last_day: dt.date,
    days: int,
    campaigns_per_day: int,
    rows: int,
    tz: ZoneInfo,
    seed: int = 1,
    jitter: float = 0.3,
    label: str = "",
) -> Generated:
    """Create `days` x `campaigns_per_day` campaigns ending on `last_day` with `rows` history rows in all
    (at least one a campaign). Each campaign gets the average size, give or take `jitter` (0.3: up to 30%
    more or less).
    """
    rng = random.Random(seed)
    t0 = time.perf_counter()
    sizes = iter(campaign_sizes(rng, rows, days * campaigns_per_day, jitter))
    next_user = 1_000_000 + rng.randrange(1_000_000_000)
    loader = _Loader(engine)
    total_rows = 0
    campaign_ids: list[int] = []
    try:
        for day in days_between(last_day - dt.timedelta(days=days - 1), last_day):
            day_start, day_end = day_bounds(day, tz)
            for _ in range(campaigns_per_day):
                n = next(sizes)
                opens = day_start + dt.timedelta(minutes=rng.randrange(9 * 60, 20 * 60))
                users, next_user = campaign_requests(rng, n, next_user)
                stock = min(rng.choice(STOCKS), max(len(set(users)) - 1, 1))
                tally = decide_batch(stock, set(), users)
                start_us, span_us = epoch_us(opens), epoch_us(day_end) - epoch_us(opens)
                requested = [start_us + off for off in arrival_offsets_us(rng, n, span_us)]
                decided, last = [], 0
                for req in requested:  # decisions follow arrivals, a few milliseconds behind
                    last = min(max(last, req + rng.randrange(2_000, 40_000)), epoch_us(day_end) - 1)
                    decided.append(last)
                sold_out_at = None
                if tally.stock_left == 0:
                    last_win = max(i for i, o in enumerate(tally.outcomes) if o is Outcome.SUCCESS)
                    sold_out_at = from_epoch_us(decided[last_win])
                campaign_id = loader.campaign(
                    name=f"{label}{day.isoformat()} giveaway #{len(campaign_ids) + 1}",
                    total_stock=stock,
                    current_stock=tally.stock_left,
                    success_count=tally.successes,
                    fail_count=tally.fails,
                    duplicate_count=tally.duplicates,
                    starts_at=opens,
                    ends_at=day_end,
                    sold_out_at=sold_out_at,
                    created_at=opens - dt.timedelta(hours=2),
                )
                loader.history(campaign_id, users, tally.outcomes, requested, decided)
                loader.seconds(campaign_id, stock, tally.outcomes, decided)
                campaign_ids.append(campaign_id)
                total_rows += n
            loader.flush()
            log.info("%s: %d rows so far (%.0f rows/s)", day, total_rows, total_rows / (time.perf_counter() - t0))
    finally:
        loader.close()
    return Generated(campaign_ids, total_rows, time.perf_counter() - t0)


class _Loader:
    """Buffers history rows in a tab-separated file and bulk-loads them."""

    def __init__(self, engine: Engine) -> None:
        self._engine = create_engine(engine.url, connect_args={"local_infile": True})
        self._conn: Any = self._engine.raw_connection()
        self._cursor = self._conn.cursor()
        self._cursor.execute("SET time_zone = '+00:00'")
        self._file = tempfile.NamedTemporaryFile("w", suffix=".tsv", delete=False)  # noqa: SIM115 - spans calls
        self._pending = 0
        self._load_data = True

    def campaign(self, **values: Any) -> int:
        columns = ", ".join(values)
        self._cursor.execute(
            f"INSERT INTO campaign ({columns}) VALUES ({', '.join(['%s'] * len(values))})", list(values.values())
        )
        return int(self._cursor.lastrowid)

    def history(
        self, campaign_id: int, users: list[int], outcomes: list[Outcome], requested: list[int], decided: list[int]
    ) -> None:
        write = self._file.write
        for i, (user, outcome, req, dec) in enumerate(zip(users, outcomes, requested, decided, strict=True)):
            write(f"gen-{campaign_id}-{i}\t{campaign_id}\t{user}\t{outcome.value}\tKAFKA\t0\t{i}\t{req}\t{dec}\n")
        self._pending += len(users)

    def seconds(self, campaign_id: int, stock: int, outcomes: list[Outcome], decided: list[int]) -> None:
        """The campaign's per-second decision counts, as the worker keeps them."""
        buckets: dict[int, list[int]] = {}
        left = stock
        for outcome, dec in zip(outcomes, decided, strict=True):
            bucket = buckets.setdefault(dec // 1_000_000, [0, 0, 0, 0])
            if outcome is Outcome.SUCCESS:
                bucket[0] += 1
                left -= 1
            elif outcome is Outcome.FAIL:
                bucket[1] += 1
            else:
                bucket[2] += 1
            bucket[3] = left
        self._cursor.executemany(
            "INSERT INTO campaign_second (campaign_id, second, success_count, fail_count, duplicate_count, "
            "stock_after) VALUES (%s, %s, %s, %s, %s, %s)",
            [(campaign_id, from_epoch_us(sec * 1_000_000), *counts) for sec, counts in sorted(buckets.items())],
        )

    def flush(self) -> None:
        self._file.flush()
        if self._pending:
            if self._load_data:
                try:
                    self._cursor.execute(
                        f"LOAD DATA LOCAL INFILE %s INTO TABLE participation_history {LOAD_COLUMNS} "
                        "SET requested_at = TIMESTAMPADD(MICROSECOND, @req_us, '1970-01-01'), "
                        "decided_at = TIMESTAMPADD(MICROSECOND, @dec_us, '1970-01-01')",
                        (self._file.name,),
                    )
                except pymysql.MySQLError as exc:
                    log.warning("LOAD DATA LOCAL INFILE refused (%s): using multi-row INSERTs", exc)
                    self._load_data = False
            if not self._load_data:
                self._insert_rows()
        self._conn.commit()
        self._file.close()
        os.unlink(self._file.name)
        self._file = tempfile.NamedTemporaryFile("w", suffix=".tsv", delete=False)  # noqa: SIM115 - spans calls
        self._pending = 0

    def _insert_rows(self) -> None:
        sql = (
            "INSERT INTO participation_history (request_id, campaign_id, user_id, status, channel, "
            "kafka_partition, kafka_offset, requested_at, decided_at) VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s)"
        )
        with open(self._file.name) as f:
            batch = []
            for line in f:
                rid, cid, user, status, channel, part, off, req, dec = line.rstrip("\n").split("\t")
                batch.append(
                    (rid, cid, user, status, channel, part, off, from_epoch_us(int(req)), from_epoch_us(int(dec)))
                )
                if len(batch) == 5000:
                    self._cursor.executemany(sql, batch)
                    batch.clear()
            if batch:
                self._cursor.executemany(sql, batch)

    def close(self) -> None:
        self._file.close()
        if os.path.exists(self._file.name):
            os.unlink(self._file.name)
        self._conn.close()
        self._engine.dispose()
