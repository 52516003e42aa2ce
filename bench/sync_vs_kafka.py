"""Experiment 1 — sync vs Kafka: 1,000 concurrent clients, stock 50, the original's question asked honestly.

From a clean state (fresh database and topic), one API server (`--workers` server processes) and
one worker process. Each round creates two campaigns with the same stock, one of each mode, and lets C clients — an
asyncio load generator (aiohttp), every client its own connection and its own user — click at the
same moment, once on the synchronous endpoint (`/participation-sync`: decided in one database
transaction per request) and once on the Kafka endpoint (`/participation`: 202 once Kafka has it,
decided by the worker). Measured per path: latency mean / p95 / p99 as the clients saw it,
requests/s (answers ÷ time from the first request to the last answer), error rate, time until every
request is decided (the Kafka path: until the worker has recorded them all), winners (must equal the
stock), users who won twice (must be 0), and the CPU seconds of the API, database and worker processes.

    python -m bench.sync_vs_kafka [--clients 1000] [--stock 50] [--rounds 3] [--workers 2]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import psutil
from sqlalchemy import Engine, func, select

from bench.common import (
    EXPERIMENTS,
    ROOT,
    api_processes,
    cpu_seconds_of,
    database_process,
    fresh_database,
    heading,
    percentile,
    run_header,
    save_results,
    served_api,
)
from fcfs.db import make_engine
from fcfs.kafka import delete_topics, ensure_topics
from fcfs.schema import Outcome, participation_history
from fcfs.settings import get_settings

PATHS = {"sync": "participation-sync", "kafka": "participation"}
MODES = {"sync": "SYNC", "kafka": "KAFKA"}  # each campaign takes part through one door (I7)


async def burst(base: str, campaign_id: int, path: str, clients: int, first_user: int) -> dict[str, Any]:
    """C clients, each on its own connection, each sending one request at the same moment."""
    start = asyncio.Event()
    latencies: list[float] = []
    errors: dict[str, int] = {}
    connector = aiohttp.TCPConnector(limit=clients, force_close=False)
    async with aiohttp.ClientSession(base, connector=connector, timeout=aiohttp.ClientTimeout(total=60)) as session:
        # open the connections first, so that the burst measures requests, not TCP handshakes
        async def touch() -> None:
            async with session.get("/health/live") as response:
                await response.read()

        await asyncio.gather(*(touch() for _ in range(clients)))

        async def one(user: int) -> None:
            await start.wait()
            t0 = time.perf_counter()
            try:
                async with session.post(f"/api/campaigns/{campaign_id}/{path}", json={"userId": user}) as response:
                    await response.read()
                    code = str(response.status)
            except (aiohttp.ClientError, TimeoutError) as exc:
                code = type(exc).__name__
            latencies.append(time.perf_counter() - t0)
            if code not in ("200", "202"):
                errors[code] = errors.get(code, 0) + 1

        tasks = [asyncio.create_task(one(first_user + i)) for i in range(clients)]
        await asyncio.sleep(0.2)  # every task is waiting at the start line
        t0 = time.perf_counter()
        start.set()
        await asyncio.gather(*tasks)
        elapsed = time.perf_counter() - t0
    ms = sorted(x * 1000 for x in latencies)
    return {
        "latency_ms": {
            "mean": round(statistics.fmean(ms), 1),
            "p50": round(percentile(ms, 50), 1),
            "p95": round(percentile(ms, 95), 1),
            "p99": round(percentile(ms, 99), 1),
            "max": round(ms[-1], 1),
        },
        "started_at": t0,
        "answered_in_s": round(elapsed, 3),
        "requests_per_s": round(clients / elapsed),
        "errors": errors,
        "error_rate": round(sum(errors.values()) / clients, 4),
    }


def decided(engine: Engine, campaign_id: int) -> int:
    with engine.connect() as conn:
        return int(
            conn.execute(select(func.count()).where(participation_history.c.campaign_id == campaign_id)).scalar_one()
        )


def outcome(engine: Engine, campaign_id: int) -> dict[str, int]:
    with engine.connect() as conn:
        winners = conn.execute(
            select(participation_history.c.user_id, func.count().label("wins"))
            .where(
                participation_history.c.campaign_id == campaign_id,
                participation_history.c.status == Outcome.SUCCESS,
            )
            .group_by(participation_history.c.user_id)
        ).all()
    return {"winners": sum(w.wins for w in winners), "users_who_won_twice": sum(1 for w in winners if w.wins > 1)}


def one_path(
    base: str,
    token: str,
    engine: Engine,
    path: str,
    args: argparse.Namespace,
    first_user: int,
    meters: dict[str, list[psutil.Process]],
) -> dict[str, Any]:
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}) as admin:
        body = {"name": f"{path} round", "totalStock": args.stock, "mode": MODES[path]}
        created = admin.post("/api/admin/campaigns", json=body)
        created.raise_for_status()
        campaign_id = int(created.json()["data"]["id"])
    cpu0 = {name: cpu_seconds_of(ps) for name, ps in meters.items()}
    result = asyncio.run(burst(base, campaign_id, PATHS[path], args.clients, first_user))
    answered = args.clients - sum(result["errors"].values())
    deadline = time.monotonic() + 120
    while decided(engine, campaign_id) < answered:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{path}: not every accepted request was decided within 120 s")
        time.sleep(0.01)
    result["all_decided_s"] = round(time.perf_counter() - result.pop("started_at"), 3)
    result["cpu_s"] = {name: round(cpu_seconds_of(ps) - cpu0[name], 2) for name, ps in meters.items()}
    result.update(outcome(engine, campaign_id))
    result["decided"] = decided(engine, campaign_id)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--stock", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2, help="API server processes (`python -m backend`)")
    parser.add_argument("--database", default="fcfs_bench_sync_kafka")
    parser.add_argument("--out-dir", type=Path, default=EXPERIMENTS)
    args = parser.parse_args()

    suffix = uuid.uuid4().hex[:8]
    settings = get_settings().model_copy(update={"kafka_topic": f"bench-sync-kafka-{suffix}"})
    database_url = fresh_database(args.database)
    ensure_topics(settings)
    env = {
        "DATABASE_URL": database_url,
        "KAFKA_TOPIC": settings.kafka_topic,
        "KAFKA_CONSUMER_GROUP": f"bench-sync-kafka-{suffix}",
        "WORKER_METRICS_PORT": "0",
        "PYTHONPATH": str(ROOT),
    }
    worker = subprocess.Popen(
        [sys.executable, "-m", "worker"], cwd=ROOT, env={**os.environ, **env}, stderr=subprocess.DEVNULL
    )
    engine = make_engine(database_url, pool_size=2)
    rounds: list[dict[str, Any]] = []
    try:
        with served_api(env, workers=args.workers) as (base, token):
            meters = {"api": api_processes(base), "worker": [psutil.Process(worker.pid)]}
            db = database_process(database_url)
            if db is not None:
                meters["database"] = [db]
            for i in range(args.rounds):
                round_ = {}
                for j, path in enumerate(PATHS):
                    round_[path] = one_path(base, token, engine, path, args, 1 + (2 * i + j) * args.clients, meters)
                    print(f"round {i + 1} {path}: {round_[path]}", flush=True)
                rounds.append(round_)
    finally:
        worker.terminate()
        worker.wait(30)
        engine.dispose()
        delete_topics(settings, [settings.kafka_topic, settings.dlq_topic])

    median = {path: _median([r[path] for r in rounds]) for path in PATHS}
    result = {
        "experiment": "sync vs Kafka",
        **run_header(args),
        "load_generator": {
            "tool": "Python asyncio + aiohttp (bench/sync_vs_kafka.py)",
            "mode": f"{args.clients} clients, one connection each (opened beforehand), one request each, "
            "all released at once",
        },
        "winners_always_exact": all(r[p]["winners"] == args.stock for r in rounds for p in PATHS),
        "users_who_won_twice": sum(r[p]["users_who_won_twice"] for r in rounds for p in PATHS),
        "median": median,
        "rounds": rounds,
    }
    save_results(args.out_dir, "sync-vs-kafka", result, report, chart)
    for path in PATHS:
        m = median[path]
        print(
            f"{path}: mean {m['latency_ms']['mean']} ms, p99 {m['latency_ms']['p99']} ms, {m['requests_per_s']} req/s"
        )


def _median(runs: list[dict[str, Any]]) -> dict[str, Any]:
    def med(values: list[float]) -> float:
        return round(statistics.median(values), 3)

    return {
        "latency_ms": {k: med([r["latency_ms"][k] for r in runs]) for k in runs[0]["latency_ms"]},
        "requests_per_s": med([r["requests_per_s"] for r in runs]),
        "error_rate": med([r["error_rate"] for r in runs]),
        "answered_in_s": med([r["answered_in_s"] for r in runs]),
        "all_decided_s": med([r["all_decided_s"] for r in runs]),
        "winners": [r["winners"] for r in runs],
        "users_who_won_twice": sum(r["users_who_won_twice"] for r in runs),
        "cpu_s": {k: med([r["cpu_s"][k] for r in runs]) for k in runs[0]["cpu_s"]},
    }


def report(r: dict[str, Any]) -> list[str]:
    """The result file's Markdown lines (the chart is appended by save_results)."""
    s, m = r["settings"], r["median"]
    cpu_names = list(m["sync"]["cpu_s"])
    lines = [
        *heading("Experiment 1 — sync vs Kafka", "bench.sync_vs_kafka", r, ["clients", "stock", "rounds", "workers"]),
        f"Load: {r['load_generator']['tool']}; {r['load_generator']['mode']}.",
        "",
        f"Each round: two fresh campaigns with stock {s['stock']}; {s['clients']:,} clients click at once on the "
        "synchronous endpoint (one database transaction per request, the campaign row locked), then on the Kafka "
        f"endpoint (202 once Kafka has the request; one worker decides). One API server with {s['workers']} uvicorn "
        f"processes and one worker process on the same machine as the broker and the database. Medians of "
        f"{s['rounds']} rounds:",
        "",
        "| path | mean | p95 | p99 | requests/s | error rate | every request decided after | winners (each round) "
        "| users who won twice | " + " | ".join(f"CPU s: {n}" for n in cpu_names) + " |",
        "|---|---|---|---|---|---|---|---|---|" + "---|" * len(cpu_names),
    ]
    for name, label in (("sync", "synchronous"), ("kafka", "Kafka")):
        x = m[name]
        lat = x["latency_ms"]
        lines.append(
            f"| {label} | {lat['mean']:.0f} ms | {lat['p95']:.0f} ms | {lat['p99']:.0f} ms "
            f"| {x['requests_per_s']:,.0f} | {x['error_rate']:.1%} | {x['all_decided_s']:.2f} s "
            f"| {', '.join(map(str, x['winners']))} | {x['users_who_won_twice']} | "
            + " | ".join(f"{x['cpu_s'][n]:.2f}" for n in cpu_names)
            + " |"
        )
    sync, kafka = m["sync"], m["kafka"]
    lines += [
        "",
        f"Both paths picked exactly {s['stock']} winners in every round "
        f"({'yes' if r['winners_always_exact'] else 'NO'}), and no user won twice ({r['users_who_won_twice']}).",
        "",
        f"The Kafka path answers {sync['latency_ms']['mean'] / max(kafka['latency_ms']['mean'], 0.001):.1f}x "
        "faster on average: its request does one thing (hand the request to Kafka) while every synchronous request "
        "queues for the one campaign row lock and a durable commit of its own. "
        + (
            f"Even the decisions come sooner: every request was decided {kafka['all_decided_s']:.2f} s after the "
            f"burst began (synchronous: {sync['all_decided_s']:.2f} s), because the worker decides them in batches, "
            "one commit each. "
            if kafka["all_decided_s"] < sync["all_decided_s"]
            else f"The price is that the decision comes later: every request was decided {kafka['all_decided_s']:.2f} "
            f"s after the burst began (synchronous: {sync['all_decided_s']:.2f} s). "
        )
        + "A Kafka-path client learns its outcome from `GET /api/campaigns/{id}/participation/{requestId}`.",
        "",
    ]
    return lines


def chart(plt: Any, r: dict[str, Any]) -> Any:
    """The result's chart, as a matplotlib figure."""
    m = r["median"]
    stats = ["mean", "p95", "p99"]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4.2), dpi=120)
    for i, (name, color) in enumerate((("sync", "#d62728"), ("kafka", "#1f77b4"))):
        bars = left.bar(
            [x + (i - 0.5) * 0.4 for x in range(len(stats))],
            [m[name]["latency_ms"][s] for s in stats],
            0.4,
            color=color,
            label="synchronous" if name == "sync" else "Kafka",
        )
        left.bar_label(bars, fmt="%.0f", fontsize=7)
    left.set_xticks(range(len(stats)), stats)
    left.set_ylabel("latency seen by the client, ms")
    left.set_title(f"{r['settings']['clients']:,} clients at once, stock {r['settings']['stock']}")
    left.legend()
    labels = ["answered", "all decided"]
    for i, (name, color) in enumerate((("sync", "#d62728"), ("kafka", "#1f77b4"))):
        right.bar(
            [x + (i - 0.5) * 0.4 for x in range(2)],
            [m[name]["answered_in_s"], m[name]["all_decided_s"]],
            0.4,
            color=color,
            label="synchronous" if name == "sync" else "Kafka",
        )
    right.set_xticks(range(2), labels)
    right.set_ylabel("seconds after the burst began")
    right.set_title("Every client answered / every request decided")
    right.legend()
    return fig


if __name__ == "__main__":
    main()
