"""The worker's Prometheus metrics, served on WORKER_METRICS_PORT (0: not served)."""

from __future__ import annotations

import logging

from prometheus_client import Counter, Gauge, Histogram, start_http_server

DECISIONS = Counter("fcfs_worker_decisions_total", "Requests decided, by outcome", ["outcome"])
REDELIVERED = Counter("fcfs_worker_redelivered_total", "Messages skipped because already decided")
DEAD_LETTERS = Counter("fcfs_worker_dead_letters_total", "Messages sent to the dead-letter topic")
DB_RETRIES = Counter("fcfs_worker_db_retries_total", "Batches retried after a database or DLQ error")
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
