"""Hot-path observations added in bulk render exactly as the same observations made one by one."""

from __future__ import annotations

import random

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from backend.app.observability import BatchedMetrics

BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


def metrics(registry: CollectorRegistry) -> tuple[Histogram, Counter]:
    histogram = Histogram("h_seconds", "h", ["route"], buckets=BUCKETS, registry=registry)
    counter = Counter("c_total", "c", ["answer"], registry=registry)
    return histogram, counter


def rendered(registry: CollectorRegistry) -> list[str]:
    """The exposition, sums rounded (adding in another order changes the last digits of a float)."""
    lines = []
    for line in generate_latest(registry).decode().splitlines():
        if "_created" in line:
            continue
        name, _, value = line.rpartition(" ")
        lines.append(f"{name} {float(value):.9g}" if "_sum{" in name else line)
    return lines


def test_bulk_flush_renders_as_one_by_one_observations() -> None:
    rng = random.Random(3)
    values = [rng.choice([0.0, 0.001, 0.01, 10.0, 11.0]) if i % 7 == 0 else rng.expovariate(20) for i in range(5000)]
    direct, batched = CollectorRegistry(), CollectorRegistry()
    (h1, c1), (h2, c2) = metrics(direct), metrics(batched)
    bulk = BatchedMetrics()
    for i, value in enumerate(values):
        route = "a" if i % 3 else "b"
        h1.labels(route).observe(value)
        c1.labels(route).inc()
        bulk.observe(h2.labels(route), value)
        bulk.inc(c2.labels(route))
        if i == 2500:
            bulk.flush()  # flushes add up
    assert rendered(direct) != rendered(batched)  # not flushed yet: the bulk holds the rest
    bulk.flush()
    assert rendered(direct) == rendered(batched)
    bulk.flush()  # nothing pending: nothing changes
    assert rendered(direct) == rendered(batched)
