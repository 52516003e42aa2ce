"""Worker drain throughput on one partition: how fast a backlog of participation requests is decided.

Each run: a fresh one-partition topic, campaigns created in the database, N events published
straight to Kafka (a backlog, as after a burst), then the worker in drain mode, in this process.
Reports decided messages/s (first message received to last commit), wall time including the
consumer-group join, and CPU seconds per 1,000 messages; the median over the runs goes to
docs/benchmarks/worker-drain.{json,md}.

    python -m bench.worker_drain [--messages 20000] [--runs 3] [--campaigns 1] [--batch-size 5000]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import random
import resource
import statistics
import time
import uuid
from pathlib import Path
from typing import Any

from confluent_kafka import Producer
from sqlalchemy import insert
from sqlalchemy.engine import make_url

from fcfs.db import make_engine, utcnow
from fcfs.events import ParticipationEvent
from fcfs.kafka import delete_topics, ensure_topics, producer_config
from fcfs.provision import provision
from fcfs.request_ids import RequestIdSigner
from fcfs.schema import campaign
from fcfs.settings import get_settings
from worker.worker import ParticipationWorker

OUT = Path(__file__).resolve().parent.parent / "docs" / "benchmarks"


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def bench_database_url(database: str) -> str:
    """The configured database server, with the benchmark's own database on it."""
    url = make_url(get_settings().database_url)
    return url.set(database=database).render_as_string(hide_password=False)


def one_run(database_url: str, messages: int, campaigns: int, batch_size: int, stock: int) -> dict[str, Any]:
    suffix = uuid.uuid4().hex[:8]
    settings = get_settings().model_copy(
        update={
            "database_url": database_url,
            "kafka_topic": f"bench-drain-{suffix}",
            "kafka_consumer_group": f"bench-drain-{suffix}",
            "kafka_topic_partitions": 1,
            "worker_batch_size": batch_size,
        }
    )
    ensure_topics(settings)
    engine = make_engine(database_url, isolation_level="READ COMMITTED", pool_size=2)
    with engine.begin() as conn:
        ids = [
            conn.execute(
                insert(campaign).values(
                    name=f"bench {suffix} #{i}", total_stock=stock, current_stock=stock, created_at=utcnow()
                )
            ).inserted_primary_key[0]  # type: ignore[index]
            for i in range(campaigns)
        ]
    signer = RequestIdSigner("bench")
    producer = Producer(producer_config(settings, **{"linger.ms": 20, "batch.num.messages": 10000}))
    rng = random.Random(1)
    for _ in range(messages):
        cid = rng.choice(ids)
        user = rng.randint(1, messages // 2)  # repeats make DUPLICATE decisions part of the load
        issued = signer.issue(cid, user)
        event = ParticipationEvent(issued.request_id, cid, user, issued.issued_at_ms)
        while True:
            try:
                producer.produce(settings.kafka_topic, event.to_json(), event.key())
                break
            except BufferError:
                producer.poll(0.05)
    assert producer.flush(60) == 0

    worker = ParticipationWorker(settings, engine, drain=True)
    cpu0, t0 = cpu_seconds(), time.monotonic()
    stats = worker.run()
    wall, cpu = time.monotonic() - t0, cpu_seconds() - cpu0
    engine.dispose()
    delete_topics(settings, [settings.kafka_topic, settings.dlq_topic])
    assert stats.decided == messages, f"decided {stats.decided} of {messages}"
    return {
        "messages": messages,
        "decided_per_s": round(stats.drain_rate()),
        "wall_s_including_group_join": round(wall, 3),
        "worker_cpu_s_per_1000": round(cpu / messages * 1000, 4),
        "batches": stats.batches,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--campaigns", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=5000)
    parser.add_argument("--stock", type=int, default=1000)
    parser.add_argument("--database", default="fcfs_bench", help="database for the benchmark's campaigns")
    parser.add_argument("--out", default="worker-drain", help="file name (without suffix) of the results")
    parser.add_argument("--out-dir", type=Path, default=OUT)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    database_url = bench_database_url(args.database)
    provision(get_settings().model_copy(update={"database_url": database_url}), kafka=False)
    runs = []
    for i in range(args.runs):
        run = one_run(database_url, args.messages, args.campaigns, args.batch_size, args.stock)
        print(f"run {i + 1}: {run}", flush=True)
        runs.append(run)
    median = {
        key: statistics.median(r[key] for r in runs)
        for key in ("decided_per_s", "wall_s_including_group_join", "worker_cpu_s_per_1000")
    }
    result: dict[str, Any] = {
        "benchmark": "worker drain, one partition",
        "settings": {k: v for k, v in vars(args).items() if k != "out_dir"},
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "runs": runs,
        "median": median,
    }
    out = args.out_dir
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{args.out}.json").write_text(json.dumps(result, indent=2) + "\n")
    rows = "\n".join(
        f"| {i + 1} | {r['messages']:,} | {r['decided_per_s']:,} | {r['wall_s_including_group_join']} "
        f"| {r['worker_cpu_s_per_1000']} | {r['batches']} |"
        for i, r in enumerate(runs)
    )
    (out / f"{args.out}.md").write_text(
        f"# Worker drain throughput, one partition\n\n"
        f"`python -m bench.worker_drain --messages {args.messages} --runs {args.runs} --campaigns {args.campaigns} "
        f"--batch-size {args.batch_size}` on {result['machine']['cpus']} cores, {result['measured_at']}.\n\n"
        f"| run | messages | decided/s | wall s (with group join) | worker CPU s / 1,000 msgs | batches |\n"
        f"|---|---|---|---|---|---|\n{rows}\n\n"
        f"**Median: {median['decided_per_s']:,.0f} messages/s**, "
        f"{median['worker_cpu_s_per_1000']} CPU s per 1,000 messages.\n"
    )
    print(json.dumps(median))


if __name__ == "__main__":
    main()
