"""The worker's heartbeat: a row the API can read to tell which workers live and how far they got."""

from __future__ import annotations

import datetime as dt
import logging
import os
import socket
import time
import uuid
from dataclasses import dataclass, field

from sqlalchemy import Engine
from sqlalchemy.dialects.mysql import insert as mysql_insert
from sqlalchemy.exc import SQLAlchemyError

from fcfs.db import utcnow
from fcfs.ledger import BatchResult
from fcfs.schema import worker_heartbeat

log = logging.getLogger(__name__)


@dataclass(slots=True)
class WorkerStats:
    """A worker's progress since it started: what its heartbeat and its final report say."""

    decisions: BatchResult = field(default_factory=BatchResult)
    batches: int = 0
    dead_lettered: int = 0
    db_retries: int = 0
    started_at: float = field(default_factory=time.monotonic)
    first_message_at: float | None = None
    last_commit_at: float | None = None

    @property
    def decided(self) -> int:
        return self.decisions.decided

    def drain_rate(self) -> float:
        """Messages decided per second from the first message received to the last commit."""
        if self.first_message_at is None or self.last_commit_at is None:
            return 0.0
        return self.decided / max(self.last_commit_at - self.first_message_at, 1e-9)


class Heartbeat:
    def __init__(self, engine: Engine, group: str, topic: str, interval_s: float = 1.0) -> None:
        self.engine = engine
        self.worker_id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"[:100]
        self.group = group
        self.topic = topic
        self.interval_s = interval_s
        self.started_at = utcnow()
        self._next = 0.0

    def beat(self, partitions: set[int], stats: WorkerStats, state: str, force: bool = False) -> None:
        """Write the heartbeat row (at most once per interval unless forced); never fails the worker."""
        now = time.monotonic()
        if not force and now < self._next:
            return
        self._next = now + self.interval_s
        values = {
            "worker_id": self.worker_id,
            "consumer_group": self.group,
            "topic": self.topic,
            "partitions": ",".join(map(str, sorted(partitions)))[:1000],
            "decided_total": stats.decided,
            "dead_lettered_total": stats.dead_lettered,
            "batches_total": stats.batches,
            "db_retries_total": stats.db_retries,
            "last_batch_at": None
            if stats.last_commit_at is None
            else utcnow() - dt.timedelta(seconds=now - stats.last_commit_at),
            "started_at": self.started_at,
            "heartbeat_at": utcnow(),
            "state": state,
        }
        stmt = mysql_insert(worker_heartbeat).values(**values)
        stmt = stmt.on_duplicate_key_update({k: stmt.inserted[k] for k in values if k != "worker_id"})
        try:
            with self.engine.begin() as conn:
                conn.execute(stmt)
        except SQLAlchemyError as exc:
            log.debug("heartbeat not written: %s", exc)
