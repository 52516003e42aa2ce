"""What one refresh of the Live page costs the backend, for a campaign with a million history rows.

Generates one campaign of `--rows` history rows (and its per-second counts) in a fresh database,
serves the API on it, then replays what the Live page does every second — campaign status, new
timeline points, Kafka offsets and lag status, new lag samples — and times each poll through the
API. Also times the first, full load of the timeline (what a page reload costs). Writes
docs/benchmarks/dashboard-poll.{md,json}.

    python -m bench.dashboard_poll [--rows 1000000] [--polls 120]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import create_engine, func, select

from bench.common import ROOT, fresh_database, percentile, save_json, served_api
from dashboard.series import REFETCH_S
from fcfs.days import local_today
from fcfs.history import generate_history
from fcfs.kafka import delete_topics, ensure_topics
from fcfs.schema import campaign, campaign_second, participation_history
from fcfs.settings import get_settings

OUT = ROOT / "docs" / "benchmarks"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--polls", type=int, default=120)
    parser.add_argument("--database", default="fcfs_bench_dashboard")
    parser.add_argument("--out-dir", type=Path, default=OUT)
    args = parser.parse_args()
    settings = get_settings()
    url = fresh_database(args.database)
    engine = create_engine(url)
    generated = generate_history(
        engine,
        last_day=local_today(settings.tz) - dt.timedelta(days=1),
        days=1,
        campaigns_per_day=1,
        rows=args.rows,
        tz=settings.tz,
        seed=7,
        jitter=0.0,
    )
    with engine.connect() as conn:
        campaign_id = int(conn.scalar(select(func.max(campaign.c.id))) or 0)
        rows = int(
            conn.scalar(
                select(func.count())
                .select_from(participation_history)
                .where(participation_history.c.campaign_id == campaign_id)
            )
            or 0
        )
        seconds = int(
            conn.scalar(
                select(func.count()).select_from(campaign_second).where(campaign_second.c.campaign_id == campaign_id)
            )
            or 0
        )
    engine.dispose()
    topic = f"bench-dashboard-{uuid.uuid4().hex[:8]}"
    topic_settings = settings.model_copy(update={"kafka_topic": topic, "kafka_consumer_group": f"{topic}-group"})
    ensure_topics(topic_settings)
    env = {"DATABASE_URL": url, "KAFKA_TOPIC": topic, "KAFKA_CONSUMER_GROUP": f"{topic}-group"}
    per_call: dict[str, list[float]] = {"status": [], "timeline": [], "kafka": [], "lag-history": []}
    polls: list[float] = []
    full_loads: list[float] = []
    try:
        with (
            served_api(env) as (base, token),
            httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=60) as client,
        ):
            time.sleep(3)  # a few lag samples
            for _ in range(6):
                t0 = time.perf_counter()
                points = client.get(f"/api/campaigns/{campaign_id}/timeline").json()["data"]["points"]
                full_loads.append((time.perf_counter() - t0) * 1000)
            last_point = points[-1]["ts"]
            last_sample = int(time.time()) - 5
            for _ in range(args.polls + 1):
                calls: list[tuple[str, str, dict[str, Any]]] = [
                    ("status", f"/api/campaigns/{campaign_id}/status", {}),
                    ("timeline", f"/api/campaigns/{campaign_id}/timeline", {"after": last_point - REFETCH_S}),
                    ("kafka", "/api/admin/kafka", {}),
                    ("lag-history", "/api/admin/kafka/lag-history", {"seconds": 300, "after": last_sample - 1}),
                ]
                total = 0.0
                for name, path, params in calls:
                    t0 = time.perf_counter()
                    r = client.get(path, params=params)
                    elapsed = (time.perf_counter() - t0) * 1000
                    r.raise_for_status()
                    per_call[name].append(elapsed)
                    total += elapsed
                polls.append(total)
                time.sleep(0.05)
    finally:
        delete_topics(topic_settings, [topic, topic_settings.dlq_topic])
    polls, full_loads = polls[1:], full_loads[1:]  # the first of each warms up
    for name in per_call:
        per_call[name] = per_call[name][1:]
    result: dict[str, Any] = {
        "benchmark": "Live page refresh cost",
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {"cpus": os.cpu_count()},
        "history_rows": rows,
        "timeline_seconds": seconds,
        "generation_s": round(generated.seconds, 1),
        "poll_ms": {"p50": round(percentile(polls, 50), 2), "p95": round(percentile(polls, 95), 2)},
        "per_call_p50_ms": {name: round(percentile(v, 50), 2) for name, v in per_call.items()},
        "full_timeline_load_ms": {"p50": round(percentile(full_loads, 50), 2), "max": round(max(full_loads), 2)},
        "polls": len(polls),
    }
    out: Path = args.out_dir
    save_json(out / "dashboard-poll.json", result)
    calls_md = "\n".join(f"| {name} | {ms} |" for name, ms in result["per_call_p50_ms"].items())
    (out / "dashboard-poll.md").write_text(
        "# Live page refresh cost\n\n"
        f"`python -m bench.dashboard_poll --rows {args.rows} --polls {args.polls}` — {os.cpu_count()} cores, "
        f"{result['measured_at']}.\n\n"
        f"One campaign with **{rows:,} history rows** ({seconds:,} seconds of decisions). Each poll is what the Live "
        "page asks every second, measured through the API on loopback:\n\n"
        f"**Backend time per 1-second poll: {result['poll_ms']['p50']} ms median, {result['poll_ms']['p95']} ms p95** "
        f"({len(polls)} polls).\n\n| call | p50 ms |\n|---|---|\n{calls_md}\n\n"
        f"A page reload fetches the whole timeline once: {result['full_timeline_load_ms']['p50']} ms median. "
        "The curves come from `campaign_second` (one row per campaign and second, kept by the worker in the "
        "decision transaction), so neither cost grows with the history.\n"
    )
    print(result)


if __name__ == "__main__":
    main()
