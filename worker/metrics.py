"""The worker's Prometheus metrics, served on WORKER_METRICS_PORT (0: not served).

The counters are read from the workers' own statistics (what their heartbeats report) when scraped, so the
two never tell different stories; the histograms and gauges are observed as batches are committed.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client import REGISTRY, Gauge, Histogram, start_http_server
from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from worker.heartbeat import WorkerStats


class WorkerCounters(Collector):
    """`fcfs_worker_decisions_total{outcome}`, `…_redelivered_total`, `…_dead_letters_total`,
    `…_db_retries_total`: the sums over this process's workers' statistics."""

    def __init__(self) -> None:
        self._stats: list[WorkerStats] = []

    def track(self, stats: WorkerStats) -> None:
        self._stats.append(stats)

    def collect(self) -> Iterator[Metric]:
        decisions = CounterMetricFamily("fcfs_worker_decisions", "Requests decided, by outcome", labels=["outcome"])
        for outcome, attribute in (("SUCCESS", "successes"), ("FAIL", "fails"), ("DUPLICATE", "duplicates")):
            decisions.add_metric([outcome], sum(getattr(s.decisions, attribute) for s in self._stats))
        yield decisions
        totals = (
            (
                "redelivered",
                "Messages skipped because already decided",
                sum(s.decisions.redelivered for s in self._stats),
            ),
            ("dead_letters", "Messages sent to the dead-letter topic", sum(s.dead_lettered for s in self._stats)),
            ("db_retries", "Batches retried after a database or DLQ error", sum(s.db_retries for s in self._stats)),
        )
        for name, text, total in totals:
            yield CounterMetricFamily(f"fcfs_worker_{name}", text, value=total)


COUNTERS = WorkerCounters()
REGISTRY.register(COUNTERS)
BATCH_SIZE = Histogram(
    "fcfs_worker_batch_size", "Messages per batch transaction", buckets=(1, 10, 50, 100, 500, 1000, 2000, 5000, 10000)
)
BATCH_SECONDS = Histogram(
    "fcfs_worker_batch_seconds",
    "Time to decide and commit one batch",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
DECISION_LATENCY = Histogram(
    "fcfs_worker_decision_latency_seconds",
    "From the API accepting a request to its decision being committed (oldest of a batch)",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
LAG = Gauge("fcfs_worker_consumer_lag", "Messages behind the end of the partition", ["partition"])
log = logging.getLogger(__name__)

LAST_BATCH = Gauge("fcfs_worker_last_batch_timestamp_seconds", "When the last batch was committed")


def serve(host: str, port: int) -> None:
    """Serve /metrics; a port already taken (another worker on this host) is logged, not fatal."""
    if not port:
        return
    try:
        start_http_server(port, addr=host)
        log.info("metrics on http://%s:%d/metrics", host, port)
    except OSError as exc:
        log.warning("metrics not served on %s:%d: %s", host, port, exc)
