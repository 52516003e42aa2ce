"""A campaign's fair opening as its operators and anyone checking the draw see it: the pre-queue filling up, the
draw's commitment and, once drawn, its seed, and the pre-queue itself in log order with each request's outcome
(the input of `python -m fcfs.draw verify`, see fcfs/draw.py)."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from typing import Any

from sqlalchemy import Engine

from backend.queries.winners import spreadsheet_safe

PRE_QUEUE_COLUMNS = ["requestId", "userId", "kafkaPartition", "kafkaOffset", "status", "promoted"]
PAGE = (  # the pre-queue in log order, with each request's outcome once drawn (the index ix_pre_queue_campaign_log)
    "SELECT q.request_id, q.user_id, q.kafka_partition, q.kafka_offset, h.status, h.promoted_at IS NOT NULL "
    "FROM pre_queue q LEFT JOIN participation_history h ON h.request_id = q.request_id "
    "WHERE q.campaign_id = %s AND q.kafka_offset > %s ORDER BY q.kafka_offset LIMIT %s"
)
FILLING = (  # requests held per second of their arrival (the Live page's pre-queue curve)
    "SELECT TIMESTAMPDIFF(SECOND, '1970-01-01 00:00:00', requested_at) AS s, COUNT(*) FROM pre_queue "
    "WHERE campaign_id = %s GROUP BY s ORDER BY s LIMIT %s"
)


def filling(engine: Engine, campaign_id: int, limit: int = 3600) -> list[dict[str, int]]:
    """Requests held per second of arrival, with the running total (at most `limit` seconds)."""
    with engine.connect() as conn:
        rows = conn.exec_driver_sql(FILLING, (campaign_id, limit)).all()
    total, points = 0, []  # (seconds since the epoch of the stored naive-UTC times: no time zone involved)
    for second, held in rows:
        total += int(held)
        points.append({"ts": int(second), "held": int(held), "total": total})
    return points


def pre_queue_rows(engine: Engine, campaign_id: int, chunk: int = 10_000) -> Iterator[tuple[Any, ...]]:
    """The campaign's pre-queue in log order, with each request's outcome (None before the draw), a page at a
    time: one short read per page, no transaction held over a download."""
    after = -1
    while True:
        with engine.connect() as conn:
            rows = conn.exec_driver_sql(PAGE, (campaign_id, after, chunk)).all()
        yield from rows
        if len(rows) < chunk:
            return
        after = rows[-1][3]


def pre_queue_csv(engine: Engine, campaign_id: int, chunk: int = 10_000) -> Iterator[bytes]:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(PRE_QUEUE_COLUMNS)
    for n, (request_id, user_id, partition, offset, status, promoted) in enumerate(
        pre_queue_rows(engine, campaign_id, chunk), start=1
    ):
        status_text = "PENDING" if status is None else str(getattr(status, "value", status))
        row = [spreadsheet_safe(request_id), user_id, partition, offset, status_text, "true" if promoted else "false"]
        writer.writerow(row)
        if n % chunk == 0:
            yield out.getvalue().encode()
            out.seek(0)
            out.truncate()
    yield out.getvalue().encode()
