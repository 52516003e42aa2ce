"""Experiment 2 — partitions 1 / 2 / 3 / 4: throughput, balance, and whether first-come-first-served held.

For each N and each way of placing messages, from a clean state: a fresh database with C campaigns,
a fresh topic with N partitions, N worker processes (`python -m worker`) in one consumer group,
waiting until every partition is assigned; then one publisher sends M requests in arrival order
(the order an API process would have accepted them) and the clock runs until every request is
decided. Placement:

- **placed**: the system's design. Each campaign is placed on a partition when it is created (the
  least weight of live campaigns, as `POST /api/admin/campaigns` does: fcfs/placement.py) and its
  requests are produced to that partition.
- **murmur2**: key = campaign id, Kafka's default partitioner: each campaign lives in one partition,
  but which one is left to the hash (with 10 campaigns on 4 partitions, half the traffic on one).
- **unkeyed**: no key, partitions in turn (round-robin): a campaign's requests spread over all.

FCFS check per campaign: the winners must be exactly the first `stock` distinct users in arrival
order; every winner outside that set is a violation (a later request that overtook an earlier one).

The database's ceiling is measured in the same run: N processes record the same requests with the
worker's own transaction (worker/store.py `record_batch`, batches of WORKER_BATCH_SIZE) straight into a
fresh database, with no Kafka: how many decisions per second the database takes from N writers.

For each N the runs are interleaved: each run measures the ceiling and then the three placements, in
another order each run, so a slow minute of the machine does not fall on one placement. Results go to
docs/experiments/partitions.{md,json,png}.

    python -m bench.partitions [--messages 50000] [--campaigns 10] [--stock 100] [--partitions 1 2 3 4]
"""

from __future__ import annotations

import argparse
import dataclasses
import multiprocessing
import os
import random
import subprocess
import sys
import time
import uuid
from collections import defaultdict
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from confluent_kafka import Producer
from sqlalchemy import Engine, insert, select, text

from bench.common import EXPERIMENTS, ROOT, apart, fresh_database, heading, run_header, save_results, spread
from fcfs.db import make_engine, utcnow
from fcfs.dead_letters import DeadLetter
from fcfs.events import ParticipationEvent, signed_event
from fcfs.kafka import delete_topics, end_offsets, ensure_topics, producer_config
from fcfs.ledger import Delivered
from fcfs.placement import PartitionLoad, choose_partition
from fcfs.request_ids import RequestIdSigner
from fcfs.schema import Outcome, campaign, participation_history, worker_heartbeat
from fcfs.settings import get_settings
from worker.store import Batch, record_batch

PLACEMENTS = ("placed", "murmur2", "unkeyed")


def requests(messages: int, campaigns: int, seed: int) -> list[ParticipationEvent]:
    """M requests over campaigns 1..C in arrival order, signed as the API signs; a few users click twice."""
    signer = RequestIdSigner(get_settings().request_id_secret.get_secret_value())
    rng = random.Random(seed)
    out = []
    for _ in range(messages):
        cid, user = rng.randint(1, campaigns), rng.randint(1, messages * 5)
        out.append(signed_event(signer, cid, user))
    return out


def fair_winners(events: list[ParticipationEvent], stock: int) -> dict[int, set[int]]:
    """Per campaign, the first `stock` distinct users in arrival order."""
    winners: dict[int, set[int]] = defaultdict(set)
    seen: dict[int, set[int]] = defaultdict(set)
    for e in events:
        if e.user_id in seen[e.campaign_id]:
            continue
        seen[e.campaign_id].add(e.user_id)
        if len(winners[e.campaign_id]) < stock:
            winners[e.campaign_id].add(e.user_id)
    return winners


def placed_partitions(campaigns: int, n: int) -> dict[int, int]:
    """Campaigns 1..C placed one after the other as the API places them (all of weight 1, all live)."""
    loads = [PartitionLoad(p, 0, 0) for p in range(n)]
    placed = {}
    for cid in range(1, campaigns + 1):
        p = choose_partition(loads)
        loads[p] = PartitionLoad(p, loads[p].campaigns + 1, loads[p].weight + 1)
        placed[cid] = p
    return placed


def target(placement: str, event: ParticipationEvent, seq: int, n: int, placed: dict[int, int]) -> dict[str, Any]:
    """How the publisher addresses one request under a placement."""
    if placement == "placed":
        return {"key": event.key(), "partition": placed[event.campaign_id]}
    if placement == "murmur2":
        return {"key": event.key()}
    return {"partition": seq % n}


def start_workers(n: int, database_url: str, topic: str, group: str) -> list[subprocess.Popen[bytes]]:
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "DATABASE_URL": database_url,
        "KAFKA_TOPIC": topic,
        "KAFKA_CONSUMER_GROUP": group,
        "KAFKA_TOPIC_PARTITIONS": str(n),
        "WORKER_METRICS_PORT": "0",
        "WORKER_INSTANCE_ID": "",
        "REQUEST_ID_SECRET": get_settings().request_id_secret.get_secret_value(),
    }
    return [
        subprocess.Popen([sys.executable, "-m", "worker"], cwd=ROOT, env=env, stderr=subprocess.DEVNULL)
        for _ in range(n)
    ]


def wait_assigned(engine: Engine, group: str, n: int, timeout_s: float = 60) -> None:
    """Until n workers report heartbeats and together hold partitions 0..n-1."""
    deadline = time.monotonic() + timeout_s
    stable = 0
    while time.monotonic() < deadline:
        with engine.connect() as conn:
            rows = conn.execute(
                select(worker_heartbeat.c.partitions).where(
                    worker_heartbeat.c.consumer_group == group, worker_heartbeat.c.state == "RUNNING"
                )
            ).all()
        held = [int(p) for row in rows for p in row.partitions.split(",") if p]
        stable = stable + 1 if len(rows) == n and sorted(held) == list(range(n)) else 0
        if stable == 5:  # the same for a heartbeat's interval (1 s) and more: the rebalance is over
            return
        time.sleep(0.25)
    raise TimeoutError(f"{n} workers did not take the {n} partitions of group {group}")


def one_run(args: argparse.Namespace, n: int, placement: str, events: list[ParticipationEvent]) -> dict[str, Any]:
    suffix = uuid.uuid4().hex[:8]
    settings = get_settings().model_copy(
        update={"kafka_topic": f"bench-partitions-{suffix}", "kafka_topic_partitions": n}
    )
    group = f"bench-partitions-{suffix}"
    database_url = fresh_database(args.database)
    engine = make_engine(database_url, pool_size=2)
    placed = placed_partitions(args.campaigns, n)
    with engine.begin() as conn:
        for i in range(args.campaigns):
            conn.execute(
                insert(campaign).values(
                    name=f"campaign {i + 1}",
                    total_stock=args.stock,
                    current_stock=args.stock,
                    created_at=utcnow(),
                    kafka_partition=placed[i + 1] if placement == "placed" else None,  # else: from anywhere
                )
            )
    ensure_topics(settings)
    workers = start_workers(n, database_url, settings.kafka_topic, group)
    try:
        wait_assigned(engine, group, n)
        producer = Producer(producer_config(settings, **{"linger.ms": 5, "batch.num.messages": 10000}))
        # the clock starts warm: connected, metadata known, producer id granted (one message to the DLQ topic)
        producer.list_topics(settings.kafka_topic, timeout=10)
        producer.produce(settings.dlq_topic, b"warm-up")
        assert producer.flush(10) == 0
        t0 = time.monotonic()
        for seq, event in enumerate(events):
            extra = target(placement, event, seq, n, placed)
            while True:
                try:
                    producer.produce(settings.kafka_topic, event.to_json(), **extra)
                    break
                except BufferError:
                    producer.poll(0.01)
        assert producer.flush(60) == 0
        published_s = time.monotonic() - t0
        deadline = t0 + 300
        while True:
            with engine.connect() as conn:
                decided = conn.execute(
                    text("SELECT COALESCE(SUM(success_count + fail_count + duplicate_count), 0) FROM campaign")
                ).scalar_one()
            if decided >= len(events):
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"only {decided} of {len(events)} decided")
            time.sleep(0.02)
        elapsed = time.monotonic() - t0
    finally:
        for w in workers:
            w.terminate()
        for w in workers:
            w.wait(60)
        per_partition = end_offsets(settings)
        delete_topics(settings, [settings.kafka_topic, settings.dlq_topic])
    with engine.connect() as conn:
        rows = conn.execute(
            select(participation_history.c.campaign_id, participation_history.c.user_id).where(
                participation_history.c.status == Outcome.SUCCESS
            )
        ).all()
    engine.dispose()
    actual: dict[int, set[int]] = defaultdict(set)
    for row in rows:
        actual[row.campaign_id].add(row.user_id)
    fair = fair_winners(events, args.stock)
    violations = sum(len(actual[c] - fair[c]) for c in fair)
    counts = [per_partition[p] for p in range(n)]
    return {
        "partitions": n,
        "placement": placement,
        "messages": len(events),
        "messages_per_partition": counts,
        "busiest_share": round(max(counts) / len(events), 3),
        "published_s": round(published_s, 3),
        "all_decided_s": round(elapsed, 3),
        "messages_per_s": round(len(events) / elapsed),
        "winners": sum(len(v) for v in actual.values()),
        "fcfs_violations": violations,
    }


def _no_dead_letters(letters: Sequence[DeadLetter]) -> None:
    raise AssertionError(f"the ceiling's requests are all decidable, got {len(letters)} dead letters")


def _record_share(database_url: str, events: list[ParticipationEvent], batch_size: int) -> tuple[float, float]:
    """One writer of the ceiling: record `events` as a worker would, a transaction per batch; its (start, end)."""
    engine = make_engine(database_url, pool_size=1)
    started = time.time()
    for first in range(0, len(events), batch_size):
        chunk = events[first : first + batch_size]
        delivered = [Delivered(e, 0, first + i) for i, e in enumerate(chunk)]
        record_batch(engine, "ceiling", Batch("ceiling", delivered, [], {0: first + len(chunk)}), {}, _no_dead_letters)
    ended = time.time()
    engine.dispose()
    return started, ended


def database_ceiling(args: argparse.Namespace, n: int, events: list[ParticipationEvent]) -> int:
    """Decisions per second the database takes from n writers, each with campaigns of its own and an equal
    share of the requests, through the worker's own transaction: no Kafka, no waiting for messages."""
    url = fresh_database(args.database + "_ceiling")
    engine = make_engine(url, pool_size=1)
    with engine.begin() as conn:
        for cid in range(1, n * args.campaigns + 1):
            conn.execute(
                insert(campaign).values(
                    name=f"ceiling {cid}", total_stock=args.stock, current_stock=args.stock, created_at=utcnow()
                )
            )
    engine.dispose()
    shares = [
        [dataclasses.replace(e, campaign_id=p * args.campaigns + e.campaign_id) for e in events[p::n]] for p in range(n)
    ]
    batch = get_settings().worker_batch_size
    with ProcessPoolExecutor(n, mp_context=multiprocessing.get_context("spawn")) as pool:
        spans = list(pool.map(_record_share, [url] * n, shares, [batch] * n))
    return round(len(events) / (max(end for _, end in spans) - min(start for start, _ in spans)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=50_000)
    parser.add_argument("--campaigns", type=int, default=10)
    parser.add_argument("--stock", type=int, default=100)
    parser.add_argument("--partitions", type=int, nargs="+", default=[1, 2, 3, 4])
    parser.add_argument("--runs", type=int, default=3, help="runs of each configuration (the median is kept)")
    parser.add_argument("--database", default="fcfs_bench_partitions")
    parser.add_argument("--out", default="partitions", help="file name (without suffix) of the results")
    parser.add_argument("--out-dir", type=Path, default=EXPERIMENTS)
    args = parser.parse_args()

    events = requests(args.messages, args.campaigns, seed=7)
    results: list[dict[str, Any]] = []
    ceilings: list[dict[str, Any]] = []
    for n in args.partitions:
        measured: list[int] = []
        by_placement: dict[str, list[dict[str, Any]]] = {placement: [] for placement in PLACEMENTS}
        for i in range(args.runs):  # the ceiling and the placements in turn, each run in another order
            measured.append(database_ceiling(args, n, events))
            for placement in PLACEMENTS[i % len(PLACEMENTS) :] + PLACEMENTS[: i % len(PLACEMENTS)]:
                run = one_run(args, n, placement, events)
                print(f"N={n} {placement} run {i + 1}: {run}", flush=True)
                by_placement[placement].append(run)
        measured.sort()
        ceilings.append({"writers": n, "decisions_per_s": measured[len(measured) // 2], "per_run": measured})
        print(f"database ceiling, {n} writer(s): {measured} decisions/s", flush=True)
        for placement in PLACEMENTS:
            runs = sorted(by_placement[placement], key=lambda r: r["messages_per_s"])
            median = dict(runs[len(runs) // 2])
            median["fcfs_violations_per_run"] = [r["fcfs_violations"] for r in runs]
            median["messages_per_s_per_run"] = [r["messages_per_s"] for r in runs]
            results.append(median)
    result = {
        "experiment": "partitions and FCFS fairness",
        **run_header(args),
        "results": results,
        "database_ceiling": ceilings,
    }
    out: Path = args.out_dir
    save_results(out, args.out, result, report, chart)
    for r in results:
        print(
            f"N={r['partitions']} {r['placement']}: {r['messages_per_s']:,} msg/s, "
            f"violations {r['fcfs_violations_per_run']}"
        )


def report(r: dict[str, Any]) -> list[str]:
    """The result file's Markdown lines (the chart is appended by save_results)."""
    s = r["settings"]
    ceiling = {c["writers"]: c for c in r.get("database_ceiling", [])}
    lines = [
        *heading(
            "Experiment 2 — partitions, placement and first-come-first-served",
            "bench.partitions",
            r,
            ["messages", "campaigns", "stock", "partitions", "runs"],
        ),
        "",
        f"{s['messages']:,} requests over {s['campaigns']} campaigns (stock {s['stock']} each, each request's "
        "campaign drawn uniformly), published in arrival order by one producer to a fresh topic with N partitions, "
        "decided by N worker processes in one consumer group (already assigned when publishing starts). Time runs "
        f"from the first publish until every request is decided; median of {s['runs']} runs with their min–max, "
        "the runs of each N interleaved (each run the ceiling, then the placements in another order). "
        "A **violation** is a "
        f"winner who is not among their campaign's first {s['stock']} distinct users in arrival order. The "
        "**busiest share** is the busiest partition's part of the messages: its worker sets the pace. The "
        "**database ceiling** is N processes recording the same number of requests with the worker's own "
        "transaction, straight into the database (no Kafka), each with campaigns of its own.",
        "",
        "| partitions = workers | placement | messages per partition | busiest share | all decided in "
        "| messages/s (min–max) | database ceiling (min–max) | winners | FCFS violations (each run) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for x in r["results"]:
        limit = ceiling.get(x["partitions"])
        limit_cell = f"{limit['decisions_per_s']:,} ({spread(limit['per_run'])})" if limit else "–"
        lines.append(
            f"| {x['partitions']} | {x['placement']} | {' / '.join(f'{m:,}' for m in x['messages_per_partition'])} "
            f"| {x['busiest_share']:.0%} | {x['all_decided_s']:.2f} s "
            f"| {x['messages_per_s']:,} ({spread(x['messages_per_s_per_run'])}) "
            f"| {limit_cell} | {x['winners']:,} "
            f"| {', '.join(map(str, x['fcfs_violations_per_run']))} |"
        )
    lines += ["", *_compared(r["results"])]
    lines += [
        "",
        "Placed or keyed, every campaign's requests stay in one partition and are decided in log order, so the "
        "winners are exactly the first comers, whatever N. Placement decides how evenly the partitions share the "
        "work: campaigns placed by load split 10 campaigns 3/3/2/2 over 4 partitions, where murmur2 of the ids "
        "may pile them up. Unkeyed, a campaign's requests are spread over the partitions and the workers race: "
        "later requests in a less busy partition overtake earlier ones.",
        "",
    ]
    return lines


def _compared(results: list[dict[str, Any]]) -> list[str]:
    """Placed against murmur2 for each N, named a difference only when their runs' ranges do not overlap and
    the two split the work differently; at N = 1 (one partition, whatever the placement) the three are the same
    configuration, and their spread is the run-to-run noise."""
    by = {(x["partitions"], x["placement"]): x for x in results}
    lines = []
    for n in sorted({x["partitions"] for x in results}):
        if n == 1:
            runs = [v for x in results if x["partitions"] == 1 for v in x["messages_per_s_per_run"]]
            if runs:
                lines.append(
                    f"- N = 1: one partition whatever the placement — the same configuration three times: "
                    f"{spread(runs)} messages/s over its runs, the noise any difference below must exceed."
                )
            continue
        placed, keyed = by.get((n, "placed")), by.get((n, "murmur2"))
        if not placed or not keyed:
            continue
        a, b = placed["messages_per_s_per_run"], keyed["messages_per_s_per_run"]
        ratio = placed["messages_per_s"] / keyed["messages_per_s"]
        if abs(placed["busiest_share"] - keyed["busiest_share"]) < 0.01:
            verdict = f"{ratio:.2f}x murmur2: the same busiest share, the same work — noise"
        elif apart(a, b):
            verdict = f"{ratio:.2f}x murmur2"
        else:
            verdict = f"{ratio:.2f}x murmur2, within the noise (runs overlap)"
        lines.append(f"- N = {n}: placed {spread(a)} messages/s, murmur2 {spread(b)}: {verdict}.")
    return lines


def chart(plt: Any, r: dict[str, Any]) -> Any:
    """The result's chart, as a matplotlib figure."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2), dpi=120)
    ns = sorted({x["partitions"] for x in r["results"]})
    colors = ("#2ca02c", "#1f77b4", "#ff7f0e")
    width = 0.8 / len(PLACEMENTS)
    for i, (placement, color) in enumerate(zip(PLACEMENTS, colors, strict=True)):
        rows = {x["partitions"]: x for x in r["results"] if x["placement"] == placement}
        left.plot(ns, [rows[n]["messages_per_s"] for n in ns], marker="o", color=color, label=placement)
        bars = right.bar(
            [n - 0.4 + width * (i + 0.5) for n in ns],
            [max(rows[n]["fcfs_violations_per_run"]) for n in ns],
            width,
            color=color,
            label=placement,
        )
        right.bar_label(bars, fontsize=8)
    ceilings = {c["writers"]: c["decisions_per_s"] for c in r.get("database_ceiling", [])}
    if ceilings:
        left.plot(ns, [ceilings[n] for n in ns], linestyle="--", color="#7f7f7f", label="database ceiling")
    left.set_xticks(ns)
    left.set_xlabel("partitions = worker processes")
    left.set_ylabel("messages decided per second")
    left.set_ylim(bottom=0)
    left.legend()
    left.set_title("Throughput")
    right.set_xticks(ns)
    right.set_xlabel("partitions = worker processes")
    right.set_ylabel("winners who were not first (worst run)")
    right.legend()
    right.set_title("FCFS violations")
    return fig


if __name__ == "__main__":
    main()
