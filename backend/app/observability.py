"""Request ids in every log line and response, and Prometheus metrics of the API.

Each request gets an id (the caller's `X-Request-ID` if it sent a sane one) that is echoed in the
response header and carried by every log record of the request. With several server processes
(`API_WORKERS`), set PROMETHEUS_MULTIPROC_DIR to an empty folder so `/metrics` sums them all.
"""

from __future__ import annotations

import asyncio
import bisect
import contextvars
import itertools
import logging
import os
import re
import secrets
import time
from collections.abc import Iterable

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from backend.app.errors import internal_error, unauthorized

log = logging.getLogger(__name__)
REQUEST_ID: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")
_SANE_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")

HTTP_SECONDS = Histogram(
    "fcfs_http_request_duration_seconds",
    "HTTP requests by route and status",
    ["method", "route", "status"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
PRODUCE_SECONDS = Histogram(
    "fcfs_kafka_produce_seconds",
    "From produce() to Kafka's acknowledgement",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
# The methods a request is counted under; any other a client makes up is counted as "other" (every label
# value is a time series kept for the process's life: a client must not be able to choose them)
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
PARTICIPATIONS = Counter("fcfs_participation_requests_total", "Participation requests by answer", ["answer"])
LOOKUPS_HELD = Gauge(
    "fcfs_lookups_held", "Look-ups held until their decision (waitSeconds)", multiprocess_mode="livesum"
)
LOOKUP_DATABASE_READS = Counter(
    "fcfs_lookup_database_reads_total", "Look-ups that read the database (the others: the decision feed alone)"
)
DECISIONS_LEARNED = Counter("fcfs_decision_feed_rows_total", "Decisions the API process learned from its feed")
HELD_ANSWER_SECONDS = Histogram(
    "fcfs_held_answer_after_decision_seconds",
    "From a request's decision (its decided_at, the worker's clock) to the answer of a look-up held for it",
    buckets=(0.1, 0.25, 0.5, 0.75, 1, 1.5, 2, 3, 5, 10, 30),
)


class BatchedMetrics:
    """Observations of the hot path, counted in plain Python and added to the Prometheus metrics in bulk.

    With several server processes, Prometheus' multiprocess mode makes every observation a locked
    write into a memory-mapped file: 6.8 µs for a histogram and 3.0 µs for a counter here, three of
    them per participation request — as much as the rest of its Python code. Counted here instead
    (~0.3 µs) and flushed once a second, or when /metrics is read. Used from the event loop only.
    The bulk flush writes a histogram's bucket and sum values directly (prometheus_client keeps them
    per bucket, not cumulated); tests/unit/test_batched_metrics.py checks that it renders exactly what
    the same `observe()` calls render.
    """

    def __init__(self) -> None:
        self._histograms: dict[Histogram, tuple[list[int], list[float]]] = {}
        self._counters: dict[Counter, int] = {}

    def observe(self, histogram: Histogram, value: float) -> None:
        pending = self._histograms.get(histogram)
        if pending is None:
            pending = self._histograms[histogram] = ([0] * len(histogram._upper_bounds), [0.0])
        pending[0][bisect.bisect_left(histogram._upper_bounds, value)] += 1
        pending[1][0] += value

    def inc(self, counter: Counter, amount: int = 1) -> None:
        self._counters[counter] = self._counters.get(counter, 0) + amount

    def flush(self) -> None:
        histograms, self._histograms = self._histograms, {}
        counters, self._counters = self._counters, {}
        for histogram, (counts, total) in histograms.items():
            for bucket, count in zip(histogram._buckets, counts, strict=True):
                if count:
                    bucket.inc(count)
            histogram._sum.inc(total[0])
        for counter, amount in counters.items():
            counter.inc(amount)

    async def flush_every(self, seconds: float = 1.0) -> None:
        while True:
            await asyncio.sleep(seconds)
            self.flush()


BATCHED = BatchedMetrics()


class RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = REQUEST_ID.get()
        return True


def configure_logging(level: int = logging.INFO) -> None:
    """The API's own loggers print the request id with every line."""
    handler = logging.StreamHandler()
    handler.addFilter(RequestIdFilter())
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"))
    for name in ("backend", "fcfs"):
        logger = logging.getLogger(name)
        if not logger.handlers:
            logger.addHandler(handler)
            logger.setLevel(level)
            logger.propagate = False


class _RequestIds:
    """New request ids: a random prefix per process and a counter (no system call per request)."""

    def __init__(self) -> None:
        self.restart()

    def restart(self) -> None:
        self.prefix = os.urandom(5).hex()
        self.counter = itertools.count(1)

    def new(self) -> str:
        return f"{self.prefix}{next(self.counter):06x}"


_IDS = _RequestIds()
os.register_at_fork(after_in_child=_IDS.restart)  # server worker processes forked after import: their own ids


def request_id_of(headers: Iterable[tuple[bytes, bytes]]) -> str:
    """The caller's `X-Request-ID` if it is a sane one, else a new id."""
    for name, value in headers:
        if name == b"x-request-id":
            return request_id_from(value.decode("latin-1"))
    return _IDS.new()


def request_id_from(given: str | None) -> str:
    """`given` (an `X-Request-ID` header's value) if it is a sane one, else a new id."""
    if given is not None and _SANE_ID.match(given):
        return given
    return _IDS.new()


class RequestContextMiddleware:
    """Sets the request id, echoes it as `X-Request-ID`, and times the request by its route template.
    An exception nothing else handled is logged here, with its trace and under the request id, and
    answered 500 with the envelope alone (no trace, no SQL: those stay in the log)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = request_id_of(scope["headers"])
        token = REQUEST_ID.set(request_id)
        status = 500
        started = time.perf_counter()
        response_started = False

        async def send_with_id(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                status, response_started = message["status"], True
                message["headers"] = [*message.get("headers", []), (b"x-request-id", request_id.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            log.exception("unhandled error on %s %s", scope["method"], scope["path"])
            if response_started:
                raise  # too late for an answer: the server drops the connection
            await internal_error().response()(scope, receive, send_with_id)
        finally:
            route = scope.get("route")  # a route's template, never the path a client chose
            method = scope["method"] if scope["method"] in METHODS else "other"
            HTTP_SECONDS.labels(method, getattr(route, "path", "unmatched"), str(status)).observe(
                time.perf_counter() - started
            )
            REQUEST_ID.reset(token)


async def metrics_response(request: Request) -> Response:
    """Prometheus exposition of this process (or of all processes, in multiprocess mode); with
    METRICS_TOKEN set, only for `Authorization: Bearer <METRICS_TOKEN>` (compared in constant time)."""
    token = request.app.state.settings.metrics_token.get_secret_value()
    if token:
        given = request.headers.get("authorization", "").removeprefix("Bearer ").encode()
        if not secrets.compare_digest(given, token.encode()):
            return unauthorized("metrics token").response()
    BATCHED.flush()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
