"""The alerter process: incidents and events to the webhooks in ALERT_WEBHOOK_URLS, from one process.

python -m batch.alerter

Every ALERT_INTERVAL_S it observes the system (fcfs/alerts.py) and sends each incident once when it opens and
once when it resolves, retried with a growing pause while a receiver fails. Several may run (one per machine,
say): the one holding the database's lock `fcfs:alerter` sends, the others stand by and take over within an
interval of its end — so one alert per incident, whichever process sends it.
"""

from __future__ import annotations

import logging
import signal
import sys
import threading

from sqlalchemy import Connection, text
from sqlalchemy.exc import DBAPIError

from fcfs.alerts import Alerter, DeadLetters, Thresholds, door_unavailable, events, lag_stalled, workers_lost
from fcfs.db import make_engine, release_lock, short_error, utcnow
from fcfs.kafka import end_offsets
from fcfs.settings import Settings, get_settings

log = logging.getLogger("batch.alerter")
LOCK = "fcfs:alerter"


def build(settings: Settings) -> Alerter:
    engine = make_engine(isolation_level="READ COMMITTED", pool_size=2, settings=settings)
    t = Thresholds(stalled_s=settings.alert_stalled_s, window_s=settings.alert_window_s)
    dead = DeadLetters(lambda: end_offsets(settings, settings.dlq_topic), settings.dlq_topic)
    urls = [u.strip() for u in settings.alert_webhook_urls.split(",") if u.strip()]
    return Alerter(
        engine,
        urls,
        [
            lambda now: lag_stalled(engine, settings.kafka_topic, now, t),
            lambda now: workers_lost(engine, now),
            lambda now: door_unavailable(engine, now, t),
            lambda now: dead(now, t),
            lambda now: events(engine, now),
        ],
    )


def _take_lock(conn: Connection) -> bool:
    return bool(conn.scalar(text("SELECT GET_LOCK(:name, 0)"), {"name": LOCK}) == 1)


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s", stream=sys.stderr)
    settings = get_settings()
    alerter = build(settings)
    locks = make_engine(pooled=False, settings=settings)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    log.info(
        "alerter up: every %.1f s, %d webhook(s)%s",
        settings.alert_interval_s,
        len(alerter.urls),
        "" if alerter.urls else " (ALERT_WEBHOOK_URLS empty: incidents recorded, nothing sent)",
    )
    holder: Connection | None = None  # the connection whose session holds the lock
    sender = False  # this process sends (it held the lock when it last could tell)
    while not stop.is_set():
        if holder is not None:
            try:
                holder.scalar(text("SELECT 1"))  # the session, and with it the lock, still there
            except DBAPIError:
                holder.invalidate()
                holder = None
        if holder is None:
            try:
                conn = locks.connect()
                if _take_lock(conn):
                    holder, sender = conn, True
                    log.info("alerter: sending (holds %s)", LOCK)
                else:
                    conn.close()
                    sender = False
            except DBAPIError:
                pass  # the database away: the last sender tells it, from memory
        if sender:
            try:
                alerter.round(utcnow())
            except DBAPIError as exc:
                log.warning("alerter: %s", short_error(exc))
        stop.wait(settings.alert_interval_s)
    if holder is not None:
        release_lock(holder, LOCK)
    alerter.engine.dispose()
    log.info("alerter stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
