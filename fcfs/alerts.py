"""Alerts: what operators must hear about without watching the dashboard, sent to webhooks from one process.

The alerter (`batch/alerter.py`) looks every ALERT_INTERVAL_S at what the system records anyway and turns each
condition into an incident with a key:

- `LAG_STALLED` (a partition): lag above zero and its committed offset unmoved for ALERT_STALLED_S or more
  (the API's lag samples, as the Kafka page's STALLED);
- `WORKER_LOST` (a worker): no heartbeat for 10 s and it did not leave cleanly — resolved when it beats again or
  a live worker holds every partition it held;
- `DEAD_LETTERS_GROWING` (the dead-letter topic): its end offsets grew within the last ALERT_WINDOW_S;
- `DOOR_UNAVAILABLE`: the door answered `503 KAFKA_UNAVAILABLE` within the last ALERT_WINDOW_S (the per-second
  answers every API process records);
- `DATABASE_UNAVAILABLE`: the alerter cannot reach the database (kept in memory meanwhile, recorded after);
- `SOLD_OUT` (a campaign) and `CROWD_FINISHED` (a crowd run): events, sent once, with nothing to resolve.

Each incident is one `alert` row: opened once while its condition holds (however many rounds see it), resolved
once when it stops; its firing and its resolution are each delivered once to every configured URL, retried
with a growing pause while a URL fails (which URLs have it is stored with the row, so a restart neither loses
nor repeats a delivery). The body is Slack-compatible: `{"text": …}`, with the incident's fields beside it.
"""

from __future__ import annotations

import datetime as dt
import enum
import hashlib
import logging
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
from sqlalchemy import Engine, insert, select, update
from sqlalchemy.exc import OperationalError

from fcfs.schema import alert, campaign, campaign_intake_second, consumer_lag_sample, crowd_run, worker_heartbeat

log = logging.getLogger(__name__)
WORKER_SILENT = dt.timedelta(seconds=10)  # a worker silent longer is LOST (as the workers' page says)
EVENTS_SINCE = dt.timedelta(minutes=10)  # a sell-out or a crowd's end older than this when first seen: not news
MAX_BACKOFF_S = 300.0
UNTIL_RESOLVED = dt.datetime(9999, 12, 31)  # a firing delivered everywhere: nothing due until it resolves


class Kind(enum.StrEnum):
    LAG_STALLED = "LAG_STALLED"
    WORKER_LOST = "WORKER_LOST"
    DEAD_LETTERS_GROWING = "DEAD_LETTERS_GROWING"
    DOOR_UNAVAILABLE = "DOOR_UNAVAILABLE"
    DATABASE_UNAVAILABLE = "DATABASE_UNAVAILABLE"
    SOLD_OUT = "SOLD_OUT"
    CROWD_FINISHED = "CROWD_FINISHED"


EVENTS = {Kind.SOLD_OUT, Kind.CROWD_FINISHED}  # sent once, nothing to resolve


@dataclass(frozen=True)
class Incident:
    key: str  # one incident per key at a time (e.g. "LAG_STALLED:topic:3")
    kind: Kind
    subject: str  # what it is about, as people read it
    text: str


@dataclass(frozen=True)
class Thresholds:
    stalled_s: float = 30.0
    window_s: float = 60.0


def lag_stalled(engine: Engine, topic: str, now: dt.datetime, t: Thresholds) -> list[Incident]:
    """Partitions whose lag stayed above zero with the committed offset unmoved for `stalled_s` or more."""
    since = now - dt.timedelta(seconds=t.stalled_s + 5)
    with engine.connect() as conn:
        rows = conn.execute(
            select(
                consumer_lag_sample.c.partition_id,
                consumer_lag_sample.c.sampled_at,
                consumer_lag_sample.c.end_offset,
                consumer_lag_sample.c.committed_offset,
            )
            .where(consumer_lag_sample.c.topic == topic, consumer_lag_sample.c.sampled_at >= since)
            .order_by(consumer_lag_sample.c.partition_id, consumer_lag_sample.c.sampled_at)
        ).all()
    by_partition: dict[int, list[Any]] = {}
    for r in rows:
        by_partition.setdefault(int(r.partition_id), []).append(r)
    found = []
    for partition, samples in sorted(by_partition.items()):
        old = [s for s in samples if s.sampled_at <= now - dt.timedelta(seconds=t.stalled_s)]
        if not old:
            continue
        window = samples[samples.index(old[-1]) :]  # from the newest sample at least `stalled_s` old
        moved = window[-1].committed_offset != window[0].committed_offset
        if not moved and all(s.end_offset > s.committed_offset for s in window):
            lag = window[-1].end_offset - window[-1].committed_offset
            found.append(
                Incident(
                    f"{Kind.LAG_STALLED}:{topic}:{partition}",
                    Kind.LAG_STALLED,
                    f"partition {partition} of {topic}",
                    f"partition {partition}: {lag:,} messages waiting and no progress for {t.stalled_s:g} s or more",
                )
            )
    return found


def workers_lost(engine: Engine, now: dt.datetime) -> list[Incident]:
    """Workers silent for WORKER_SILENT that did not leave cleanly and whose partitions no live worker holds."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(worker_heartbeat).where(worker_heartbeat.c.heartbeat_at > now - dt.timedelta(hours=1))
        ).all()
    live = [r for r in rows if r.state != "STOPPED" and now - r.heartbeat_at < WORKER_SILENT]
    held = {(r.consumer_group, r.topic, p) for r in live for p in r.partitions.split(",") if p}
    found = []
    for r in rows:
        if r.state == "STOPPED" or now - r.heartbeat_at < WORKER_SILENT:
            continue
        partitions = [p for p in r.partitions.split(",") if p]
        if partitions and all((r.consumer_group, r.topic, p) in held for p in partitions):
            continue  # taken over: the line moves again
        silent = int((now - r.heartbeat_at).total_seconds())
        found.append(
            Incident(
                f"{Kind.WORKER_LOST}:{r.worker_id}",
                Kind.WORKER_LOST,
                f"worker {r.worker_id}",
                f"worker {r.worker_id} (partitions {r.partitions or 'none'}) silent for {silent} s: killed, hung or "
                "cut off",
            )
        )
    return found


def door_unavailable(engine: Engine, now: dt.datetime, t: Thresholds) -> list[Incident]:
    since = (now - dt.timedelta(seconds=t.window_s)).replace(microsecond=0)
    with engine.connect() as conn:
        refused = conn.scalar(
            select(campaign_intake_second.c.unavailable)
            .where(campaign_intake_second.c.second >= since, campaign_intake_second.c.unavailable > 0)
            .limit(1)
        )
    if not refused:
        return []
    return [
        Incident(
            str(Kind.DOOR_UNAVAILABLE),
            Kind.DOOR_UNAVAILABLE,
            "the participation door",
            f"the door answered 503 KAFKA_UNAVAILABLE within the last {t.window_s:g} s: Kafka did not acknowledge",
        )
    ]


def events(engine: Engine, now: dt.datetime) -> list[Incident]:
    """Campaigns sold out and crowd runs ended lately (each once: the key names the moment)."""
    since = now - EVENTS_SINCE
    with engine.connect() as conn:
        sold = conn.execute(
            select(campaign.c.id, campaign.c.name, campaign.c.total_stock, campaign.c.sold_out_at).where(
                campaign.c.sold_out_at >= since
            )
        ).all()
        ended = conn.execute(
            select(crowd_run.c.id, crowd_run.c.campaign_id, crowd_run.c.status, crowd_run.c.sent, crowd_run.c.accepted)
            .where(crowd_run.c.ended_at >= since)
            .where(crowd_run.c.status.in_(("FINISHED", "STOPPED", "FAILED", "LOST")))
        ).all()
    found = [
        Incident(
            f"{Kind.SOLD_OUT}:{c.id}:{c.sold_out_at:%Y%m%d%H%M%S%f}",
            Kind.SOLD_OUT,
            f"campaign {c.id}",
            f"campaign {c.id} “{c.name}” sold out: {c.total_stock:,} winners",
        )
        for c in sold
    ]
    found += [
        Incident(
            f"{Kind.CROWD_FINISHED}:{r.id}",
            Kind.CROWD_FINISHED,
            f"crowd run {r.id}",
            f"crowd run {r.id} on campaign {r.campaign_id} {r.status}: {r.sent:,} sent, {r.accepted:,} accepted",
        )
        for r in ended
    ]
    return found


class DeadLetters:
    """The dead-letter topic's end offsets over the last window: growing while they rose within it."""

    def __init__(self, read: Callable[[], dict[int, int]], topic: str) -> None:
        self.read = read
        self.topic = topic
        self.samples: deque[tuple[dt.datetime, int]] = deque()

    def __call__(self, now: dt.datetime, t: Thresholds) -> list[Incident]:
        try:
            total = sum(self.read().values())
        except Exception as exc:  # noqa: BLE001 - Kafka away: the door's and lag's alerts tell it
            log.debug("alerter: cannot read the dead-letter topic: %s", exc)
            return []
        self.samples.append((now, total))
        while self.samples and self.samples[0][0] < now - dt.timedelta(seconds=t.window_s):
            self.samples.popleft()
        grown = total - self.samples[0][1]
        if grown <= 0:
            return []
        return [
            Incident(
                f"{Kind.DEAD_LETTERS_GROWING}:{self.topic}",
                Kind.DEAD_LETTERS_GROWING,
                f"dead-letter topic {self.topic}",
                f"{grown:,} message(s) dead-lettered within the last {t.window_s:g} s: see the Kafka page",
            )
        ]


def url_digest(url: str) -> str:
    return hashlib.sha256(url.encode()).hexdigest()[:12]


def body(row: Any, resolved: bool) -> dict[str, Any]:
    """The webhook's JSON: Slack's `text`, and the incident's fields for any other receiver."""
    what = "RESOLVED" if resolved else ("EVENT" if row.kind in EVENTS else "FIRING")
    return {
        "text": f"[{what}] {row.kind}: {row.text}",
        "alertId": row.id,
        "kind": row.kind,
        "state": what,
        "subject": row.subject,
        "key": row.incident_key,
        "openedAt": f"{row.opened_at:%Y-%m-%dT%H:%M:%S.%f}Z",
        "resolvedAt": None if row.resolved_at is None else f"{row.resolved_at:%Y-%m-%dT%H:%M:%S.%f}Z",
    }


@dataclass
class Alerter:
    """One round at a time: observe, open and resolve incidents, deliver what is due."""

    engine: Engine
    urls: Sequence[str]
    probes: list[Callable[[dt.datetime], Iterable[Incident]]]
    post: Callable[[str, dict[str, Any]], None] = field(default=lambda url, data: _post(url, data))
    database_down_since: dt.datetime | None = None
    _memory_sent: set[str] = field(default_factory=set)  # digests of the URLs that have the database's outage
    _memory_attempts: int = 0
    _memory_next: dt.datetime = dt.datetime.min

    def round(self, now: dt.datetime) -> None:
        try:
            seen = {i.key: i for probe in self.probes for i in probe(now)}
        except Exception as exc:
            if _database_down(exc):
                self._database_down(now)
                return
            raise
        if self.database_down_since is not None:
            self._database_back(now)
        self._reconcile(seen, now)
        self.deliver(now)

    def _reconcile(self, seen: dict[str, Incident], now: dt.datetime) -> None:
        with self.engine.begin() as conn:
            open_rows = conn.execute(select(alert).where(alert.c.resolved_at.is_(None))).all()
            known = {r.incident_key for r in open_rows}
            event_keys = [i.key for i in seen.values() if i.kind in EVENTS]
            if event_keys:
                known |= set(
                    conn.execute(select(alert.c.incident_key).where(alert.c.incident_key.in_(event_keys))).scalars()
                )
            for incident in seen.values():
                if incident.key not in known:
                    conn.execute(
                        insert(alert).values(
                            incident_key=incident.key,
                            kind=incident.kind.value,
                            subject=incident.subject,
                            text=incident.text,
                            opened_at=now,
                            resolved_at=now if incident.kind in EVENTS else None,
                            next_attempt_at=now,
                        )
                    )
            for r in open_rows:
                if r.incident_key not in seen:
                    conn.execute(
                        update(alert).where(alert.c.id == r.id).values(resolved_at=now, next_attempt_at=now, attempts=0)
                    )

    def deliver(self, now: dt.datetime) -> None:
        """Send every firing and resolution not yet delivered to every URL (due ones: retried with backoff)."""
        if not self.urls:
            return
        with self.engine.connect() as conn:
            due = conn.execute(
                select(alert)
                .where(alert.c.next_attempt_at <= now, alert.c.done.is_(False))
                .order_by(alert.c.id)
                .limit(100)
            ).all()
        for row in due:
            self._deliver_row(row, now)

    def _deliver_row(self, row: Any, now: dt.datetime) -> None:
        fired = set(filter(None, (row.fired_to or "").split(",")))
        resolved = set(filter(None, (row.resolved_to or "").split(",")))
        error = None
        for url in self.urls:
            digest = url_digest(url)
            for sent, resolution in ((fired, False), (resolved, True)):
                if resolution and (row.resolved_at is None or row.kind in EVENTS):
                    continue
                if digest in sent:
                    continue
                try:
                    self.post(url, body(row, resolution))
                    sent.add(digest)
                except Exception as exc:  # noqa: BLE001 - a receiver down: retried later
                    error = f"{type(exc).__name__}: {exc}"[:300]
                    break  # (a resolution only after its firing)
        digests = {url_digest(u) for u in self.urls}
        done = digests <= fired and (row.resolved_at is not None and (row.kind in EVENTS or digests <= resolved))
        attempts = row.attempts + 1 if error else 0
        pause = min(2.0**attempts, MAX_BACKOFF_S)
        with self.engine.begin() as conn:
            conn.execute(
                update(alert)
                .where(alert.c.id == row.id)
                .values(
                    fired_to=",".join(sorted(fired)),
                    resolved_to=",".join(sorted(resolved)),
                    attempts=attempts,
                    last_error=error,
                    next_attempt_at=now + dt.timedelta(seconds=pause) if error else UNTIL_RESOLVED,
                    done=done,
                )
            )
        if error:
            log.warning("alert %d: delivery failed (%s); again in %.0f s", row.id, error, pause)

    def _database_down(self, now: dt.datetime) -> None:
        if self.database_down_since is None:
            self.database_down_since = now
            self._memory_sent, self._memory_attempts, self._memory_next = set(), 0, now
            log.warning("alerter: the database is unavailable")
        self._send_memory(now)

    def _database_back(self, now: dt.datetime) -> None:
        since, self.database_down_since = self.database_down_since, None
        assert since is not None
        log.info("alerter: the database answers again")
        with self.engine.begin() as conn:  # recorded once it is back: the incident as it was, and its resolution
            conn.execute(
                insert(alert).values(
                    incident_key=f"{Kind.DATABASE_UNAVAILABLE}:{since:%Y%m%d%H%M%S%f}",
                    kind=Kind.DATABASE_UNAVAILABLE.value,
                    subject="the database",
                    text="the alerter could not reach the database",
                    opened_at=since,
                    resolved_at=now,
                    next_attempt_at=now,
                    fired_to=",".join(sorted(self._memory_sent)),  # (the URLs that had it while it was away)
                )
            )

    def _send_memory(self, now: dt.datetime) -> None:
        """The database's own outage, from memory: to each URL that does not have it yet, retried with a growing
        pause while the database stays away (its row, with what is still due, is written when it is back)."""
        if now < self._memory_next:
            return
        since = self.database_down_since
        assert since is not None
        data = {
            "text": f"[FIRING] {Kind.DATABASE_UNAVAILABLE}: the alerter cannot reach the database",
            "kind": Kind.DATABASE_UNAVAILABLE.value,
            "state": "FIRING",
            "subject": "the database",
            "openedAt": f"{since:%Y-%m-%dT%H:%M:%S.%f}Z",
        }
        failed = False
        for url in self.urls:
            if url_digest(url) in self._memory_sent:
                continue
            try:
                self.post(url, data)
                self._memory_sent.add(url_digest(url))
            except Exception as exc:  # noqa: BLE001 - a receiver down too: again after a pause
                failed = True
                log.warning("alerter: cannot send the database's outage to %s: %s", url, exc)
        self._memory_attempts = self._memory_attempts + 1 if failed else 0
        self._memory_next = now + dt.timedelta(seconds=min(2.0**self._memory_attempts, MAX_BACKOFF_S) if failed else 0)


def _post(url: str, data: dict[str, Any]) -> None:
    response = httpx.post(url, json=data, timeout=5.0)
    response.raise_for_status()


def _database_down(exc: Exception) -> bool:
    return isinstance(exc, OperationalError)
