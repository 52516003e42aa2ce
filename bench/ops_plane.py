"""Does the operator still see during a storm? The Live page's poll, idle and under 1,000 connections.

Three layouts, served at once, each from a clean state (its own topic, database and worker, a campaign with a
large stock), their storms interleaved round by round:

- **one plane**: one API server (2 processes, `--plane all`) takes the crowd and the dashboard's calls;
- **two planes**: the crowd's door (2 processes, `--plane public`) and the operators' plane (1 process,
  `--plane ops`, the Procfile's `ops` line) on its own port;
- **two planes, door niced**: the same, the door's processes at a lower CPU priority (`API_NICE`), so
  that on a shared machine the operators' calls, the broker and the database get the CPU first.

For each: the Live page's poll (the four calls it makes every second: status, new timeline points,
Kafka offsets and lag status, new lag samples) timed once a second while idle, then during a storm
(wrk, closed loop, 1,000 connections posting participations) while a worker decides them; and the storm's
intake alone and with the polls, to see what polling costs the crowd. Writes docs/benchmarks/ops-plane.{md,json}.

    python -m bench.ops_plane [--clients 1000] [--duration 10] [--rounds 3] [--settle 2]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil

from bench.common import (
    ROOT,
    apart,
    api_processes,
    fresh_database,
    percentile,
    running_worker,
    save_json,
    served_api,
    spread,
)
from bench.loadgen import attack
from dashboard.series import REFETCH_S
from fcfs.kafka import delete_topics, ensure_topics
from fcfs.settings import get_settings

OUT = ROOT / "docs" / "benchmarks"
NICED = "two planes, door niced"
LAYOUTS = ("one plane", "two planes", NICED)


def live_page_poll(client: httpx.Client, campaign_id: int) -> float:
    """One refresh of the Live page (its four calls, one after the other); milliseconds."""
    now = int(time.time())
    started = time.perf_counter()
    for path, params in (
        (f"/api/campaigns/{campaign_id}/status", {}),
        (f"/api/campaigns/{campaign_id}/timeline", {"after": now - REFETCH_S}),
        ("/api/admin/kafka", {}),
        ("/api/admin/kafka/lag-history", {"seconds": 300, "after": now - 2}),
    ):
        client.get(path, params=params).raise_for_status()
    return (time.perf_counter() - started) * 1000


@contextlib.contextmanager
def polling(base: str, token: str, campaign_id: int) -> Iterator[list[float]]:
    """Poll like the Live page, once a second, until the block ends; the poll times."""
    times: list[float] = []
    done = threading.Event()

    def run() -> None:
        with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=60) as client:
            while not done.is_set():
                started = time.monotonic()
                times.append(live_page_poll(client, campaign_id))
                done.wait(max(0.0, 1.0 - (time.monotonic() - started)))

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield times
    finally:
        done.set()
        thread.join()


def summary(times: list[float], warm_up: bool = True) -> dict[str, float]:
    body = (times[1:] if warm_up else times) or times  # the first poll warms connections up
    return {"p50": round(percentile(body, 50), 1), "p95": round(percentile(body, 95), 1), "polls": len(body)}


@dataclass
class Layout:
    """One layout served from a clean state (its own topic, database and worker), with what its rounds measured."""

    name: str
    door: str
    ops: str
    token: str
    campaign_id: int
    watched: list[psutil.Process]
    idle: list[float] = field(default_factory=list)
    stormy: list[float] = field(default_factory=list)
    alone: list[int] = field(default_factory=list)
    polled: list[int] = field(default_factory=list)
    errors: int = 0


@contextlib.contextmanager
def layout_served(args: argparse.Namespace, name: str) -> Iterator[Layout]:
    settings = get_settings()
    url = fresh_database(f"{args.database}_{name.replace(' ', '_').replace(',', '')}")
    topic = f"bench-ops-{uuid.uuid4().hex[:8]}"
    env = {"DATABASE_URL": url, "KAFKA_TOPIC": topic, "KAFKA_CONSUMER_GROUP": f"{topic}-group"}
    topic_settings = settings.model_copy(update={"kafka_topic": topic, "kafka_consumer_group": f"{topic}-group"})
    ensure_topics(topic_settings)
    try:
        with contextlib.ExitStack() as stack:
            door_env = {**env, "API_PLANE": "all" if name == "one plane" else "public"}
            if name == NICED:
                door_env["API_NICE"] = str(args.door_nice)
            stack.enter_context(running_worker(env))  # deciding as in the shipped layout, in every layout
            door, token = stack.enter_context(served_api(door_env, workers=2))
            ops = door
            if name != "one plane":
                ops, token = stack.enter_context(served_api({**env, "API_PLANE": "ops"}, workers=1))
            with httpx.Client(base_url=ops, headers={"Authorization": f"Bearer {token}"}, timeout=60) as client:
                created = client.post("/api/admin/campaigns", json={"name": "storm", "totalStock": 100_000_000})
                created.raise_for_status()
                campaign_id = created.json()["data"]["id"]
            yield Layout(name, door, ops, token, campaign_id, api_processes(door))
    finally:
        delete_topics(topic_settings, [topic, topic_settings.dlq_topic])


def storm(args: argparse.Namespace, layout: Layout, polled: bool, first_user: int) -> None:
    """One storm on the layout's door, with or without the Live page polling its operators' plane."""
    with contextlib.ExitStack() as polls:
        times = polls.enter_context(polling(layout.ops, layout.token, layout.campaign_id)) if polled else []
        result = attack(
            f"{layout.door}/api/campaigns/{layout.campaign_id}/participation",
            clients=args.clients,
            duration_s=args.duration,
            first_user=first_user,
            watched=layout.watched,
        )
    (layout.polled if polled else layout.alone).append(result["requests_per_s"])
    layout.stormy.extend(times[1:])  # the first poll of a storm warms up
    layout.errors += result["errors"]
    time.sleep(args.settle)  # the worker decides what is left before the next layout's storm


def measure(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Every layout served at once; their rounds interleaved (each round visits the layouts in another order,
    alone and polled in turn), so a slow minute of the machine falls on all of them."""
    with contextlib.ExitStack() as stack:
        layouts = [stack.enter_context(layout_served(args, name)) for name in LAYOUTS]
        time.sleep(2)
        for layout in layouts:
            with polling(layout.ops, layout.token, layout.campaign_id) as idle:
                time.sleep(args.idle)
            layout.idle = idle
        for n in range(args.rounds):
            order = layouts[n % len(layouts) :] + layouts[: n % len(layouts)]
            for i, layout in enumerate(order):
                for polled in (False, True) if (n + i) % 2 == 0 else (True, False):
                    storm(args, layout, polled, first_user=(2 * n + polled) * 10**8 + 1)
    return [figures_of(layout) for layout in layouts]


def figures_of(layout: Layout) -> dict[str, Any]:
    idle_ms, storm_ms = summary(layout.idle), summary(layout.stormy, warm_up=False)
    alone_per_s, polled_per_s = round(statistics.median(layout.alone)), round(statistics.median(layout.polled))
    result = {
        "layout": layout.name,
        "idle_poll_ms": idle_ms,
        "storm_poll_ms": storm_ms,
        "intake_alone_per_s": alone_per_s,
        "intake_with_polls_per_s": polled_per_s,
        "intake_alone_runs": layout.alone,
        "intake_with_polls_runs": layout.polled,
        "errors": layout.errors,
        "poll_p95_vs_idle": round(storm_ms["p95"] / idle_ms["p95"], 2),
        "intake_change": round(polled_per_s / alone_per_s - 1, 3),
        "intake_change_beyond_noise": apart(layout.alone, layout.polled),
    }
    print(result, flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--duration", type=int, default=10, help="seconds of each storm")
    parser.add_argument("--settle", type=int, default=2, help="seconds after each storm, for its worker to finish")
    parser.add_argument("--idle", type=int, default=10, help="seconds of idle polling")
    parser.add_argument("--rounds", type=int, default=3, help="storms alone and with polls, each, per layout")
    parser.add_argument("--door-nice", type=int, default=10, help="API_NICE of the door in the third layout")
    parser.add_argument("--database", default="fcfs_bench_ops")
    parser.add_argument("--out-dir", type=Path, default=OUT)
    args = parser.parse_args()
    results = measure(args)
    figures = {
        "benchmark": "operators' plane during a storm",
        "settings": {k: v for k, v in vars(args).items() if k != "out_dir"},
        "machine": {"cpus": os.cpu_count()},
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "results": results,
    }
    save_json(args.out_dir / "ops-plane.json", figures)
    rows = "\n".join(
        f"| {r['layout']} | {r['idle_poll_ms']['p50']} / {r['idle_poll_ms']['p95']} "
        f"| {r['storm_poll_ms']['p50']} / {r['storm_poll_ms']['p95']} | {r['poll_p95_vs_idle']}× "
        f"| {r['intake_alone_per_s']:,} ({spread(r['intake_alone_runs'])}) "
        f"| {r['intake_with_polls_per_s']:,} ({spread(r['intake_with_polls_runs'])}) "
        f"| {r['intake_change']:+.1%}{'' if r['intake_change_beyond_noise'] else ' (within the spread)'} "
        f"| {r['errors']} |"
        for r in results
    )
    (args.out_dir / "ops-plane.md").write_text(
        "# The operators' plane during a storm\n\n"
        f"`python -m bench.ops_plane --clients {args.clients} --duration {args.duration} --rounds {args.rounds} "
        f"--settle {args.settle}` — "
        f"{os.cpu_count()} cores, "
        f"{figures['measured_at']}.\n\n"
        "The Live page's poll (its four calls: status, new timeline points, Kafka offsets and lag status, new lag "
        f"samples) once a second: {args.idle} s idle, then during a storm of {args.clients:,} connections posting "
        f"participations for {args.duration} s (wrk, closed loop), {args.rounds} storms alone and {args.rounds} with "
        "the polls per layout. The three layouts are served at once, each from a clean state (its own topic, "
        "database and worker), and their storms interleaved: each round visits every layout, in another order "
        f"each round, alone and polled in turn, with {args.settle} s after each storm for its worker to finish (the "
        "other layouts idle meanwhile). "
        "Poll times over every polled storm; intake as the median of each kind with the rounds' min–max. "
        "**One plane**: one API server (2 processes) for the crowd and the dashboard. **Two planes**: the crowd's "
        "door (2 processes, `--plane public`) and the operators' plane (1 process, `--plane ops`) on its own port. "
        f"**Two planes, door niced**: the same with the door's processes at `API_NICE={args.door_nice}`, below "
        "the operators' plane, the broker and the database (the Procfile's layout). "
        "In every layout one worker decides the storm's requests as they come (the shipped layout), and "
        "everything — servers, worker, broker, database, load generator — shares the same cores.\n\n"
        "| layout | idle poll p50 / p95 ms | storm poll p50 / p95 ms | storm p95 ÷ idle p95 | intake alone /s "
        "| intake with polls /s | change | errors |\n|---|---|---|---|---|---|---|---|\n"
        f"{rows}\n"
    )


if __name__ == "__main__":
    main()
