"""Experiment 3 — raw vs batched statistics: the same numbers, read from the history or from the aggregates.

From a clean database: generate D days of history (at least 5 million rows by default), aggregate
every day through the API, then time the statistics endpoints repeatedly through the API — one day
and the whole period, raw (`/api/admin/stats/raw`) and batched (`/api/admin/stats/daily`),
alternating so both see the same machine. Checks that both give the same numbers, then writes
docs/experiments/raw-vs-batch.{md,json,png}.

    python -m bench.raw_vs_batch [--rows 5200000] [--days 30] [--campaigns-per-day 10] [--repeats 20]
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import time
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import create_engine, func, select

from bench.common import EXPERIMENTS, fresh_database, heading, percentile, run_header, save_results, served_api
from fcfs.days import local_today
from fcfs.history import generate_history
from fcfs.schema import participation_history
from fcfs.settings import get_settings

log = logging.getLogger("bench.raw_vs_batch")
QUERIES = ("daily-raw", "daily-batched", "period-raw", "period-batched")


def aggregate_all(client: httpx.Client, days: list[dt.date]) -> list[float]:
    """Aggregate each day through the API; return each run's duration in seconds."""
    durations = []
    for day in days:
        job_id = client.post("/api/admin/batch/aggregate", params={"date": day.isoformat()}).json()["data"][
            "jobExecutionId"
        ]
        while True:
            job = client.get(f"/api/admin/batch/status/{job_id}").json()["data"]
            if job["status"] != "STARTED":
                break
            time.sleep(0.1)
        if job["status"] != "COMPLETED":
            raise RuntimeError(f"aggregation of {day} ended {job['status']}: {job['error']}")
        durations.append(job["durationMs"] / 1000)
    return durations


def timed(client: httpx.Client, path: str, params: dict[str, str]) -> tuple[float, float, dict[str, Any]]:
    t0 = time.perf_counter()
    r = client.get(path, params=params)
    wall = (time.perf_counter() - t0) * 1000
    r.raise_for_status()
    data: dict[str, Any] = r.json()["data"]
    return wall, float(data["queryTimeMs"]), data


def comparable(data: dict[str, Any]) -> list[dict[str, Any]]:
    keys = ("campaignId", "successCount", "failCount", "duplicateCount", "totalCount", "successRate")
    rows = data.get("rows", data["campaigns"])
    return [{k: row.get(k, row.get("date")) for k in (*keys, "date") if k in row} for row in rows]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=5_200_000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--campaigns-per-day", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--database", default="fcfs_experiment")
    parser.add_argument("--out-dir", type=Path, default=EXPERIMENTS)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    settings = get_settings()

    url = fresh_database(args.database)
    engine = create_engine(url)
    last_day = local_today(settings.tz) - dt.timedelta(days=1)
    log.info("generating %d days x %d campaigns, ~%d rows", args.days, args.campaigns_per_day, args.rows)
    generated = generate_history(
        engine,
        last_day=last_day,
        days=args.days,
        campaigns_per_day=args.campaigns_per_day,
        rows=args.rows,
        tz=settings.tz,
        seed=42,
    )
    with engine.connect() as conn:
        rows = int(conn.scalar(select(func.count()).select_from(participation_history)) or 0)
    engine.dispose()
    days = [last_day - dt.timedelta(days=i) for i in range(args.days - 1, -1, -1)]
    period = {"from": days[0].isoformat(), "to": days[-1].isoformat()}

    samples: dict[str, dict[str, list[float]]] = {q: {"wall": [], "server": []} for q in QUERIES}
    with (
        served_api({"DATABASE_URL": url}) as (base, token),
        httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=600) as client,
    ):
        log.info("aggregating %d days through the API", len(days))
        aggregation_s = aggregate_all(client, days)
        mismatches = 0
        for i in range(args.repeats + 1):  # the first round warms the caches and is not counted
            day = {"date": days[i % len(days)].isoformat()}
            plan = [
                ("daily-raw", "/api/admin/stats/raw", day),
                ("daily-batched", "/api/admin/stats/daily", day),
                ("period-raw", "/api/admin/stats/raw", period),
                ("period-batched", "/api/admin/stats/daily", period),
            ]
            if i % 2:
                plan = [plan[1], plan[0], plan[3], plan[2]]
            answers = {}
            for name, path, params in plan:
                wall, server, data = timed(client, path, params)
                answers[name] = data
                if i:
                    samples[name]["wall"].append(wall)
                    samples[name]["server"].append(server)
            for scope in ("daily", "period"):
                if comparable(answers[f"{scope}-raw"]) != comparable(answers[f"{scope}-batched"]):
                    mismatches += 1
            log.info("round %d/%d done", i, args.repeats)

    figures = {
        q: {
            f"{kind}_{stat}_ms": round(percentile(samples[q][kind], p), 2)
            for kind in ("wall", "server")
            for stat, p in (("p50", 50), ("p95", 95))
        }
        for q in QUERIES
    }
    ratios = {
        scope: round(figures[f"{scope}-raw"]["wall_p50_ms"] / figures[f"{scope}-batched"]["wall_p50_ms"], 1)
        for scope in ("daily", "period")
    }
    result = {
        "experiment": "raw vs batched statistics",
        **run_header(args),
        "history_rows": rows,
        "campaigns": generated.campaigns,
        "generation": {"seconds": round(generated.seconds, 1), "rows_per_s": round(generated.rows_per_s)},
        "aggregation_s_per_day": {
            "p50": round(percentile(aggregation_s, 50), 3),
            "max": round(max(aggregation_s), 3),
            "total": round(sum(aggregation_s), 1),
        },
        "figures": figures,
        "ratio_raw_over_batched_p50": ratios,
        "mismatches": mismatches,
        "samples": samples,
    }
    out: Path = args.out_dir
    save_results(out, "raw-vs-batch", result, report, chart)
    print(
        f"{rows:,} rows: daily {ratios['daily']}x, period {ratios['period']}x faster batched; mismatches={mismatches}"
    )


def chart(plt: Any, r: dict[str, Any]) -> Any:
    """The result's chart, as a matplotlib figure."""
    f = r["figures"]
    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=120)
    groups = ["one day", f"{r['settings']['days']} days"]
    x = range(len(groups))
    width = 0.2
    for i, (label, key, stat) in enumerate(
        [
            ("raw p50", "raw", "p50"),
            ("raw p95", "raw", "p95"),
            ("batched p50", "batched", "p50"),
            ("batched p95", "batched", "p95"),
        ]
    ):
        values = [f[f"{scope}-{key}"][f"wall_{stat}_ms"] for scope in ("daily", "period")]
        bars = ax.bar(
            [xi + (i - 1.5) * width for xi in x],
            values,
            width,
            label=label,
            color=["#d62728", "#ff9896", "#1f77b4", "#aec7e8"][i],
        )
        ax.bar_label(bars, fmt="%.1f", fontsize=7)
    ax.set_yscale("log")
    ax.set_xticks(list(x), groups)
    ax.set_ylabel("response time through the API, ms (log scale)")
    ax.set_title(f"Raw vs batched statistics — {r['history_rows']:,} history rows")
    ax.legend()
    return fig


def report(r: dict[str, Any]) -> list[str]:
    """The result file's Markdown lines (the chart is appended by save_results)."""
    f = r["figures"]
    lines = [
        *heading(
            "Experiment 3 — raw vs batched statistics",
            "bench.raw_vs_batch",
            r,
            ["rows", "days", "campaigns_per_day", "repeats"],
        ),
        "",
        f"**{r['history_rows']:,} history rows**, {r['campaigns']} campaigns over {r['settings']['days']} days "
        f"(generated in {r['generation']['seconds']} s, {r['generation']['rows_per_s']:,} rows/s). "
        f"Aggregating one day took {r['aggregation_s_per_day']['p50']} s (median; "
        f"{r['aggregation_s_per_day']['total']} s for all days).",
        "",
        "Each query through the API, measured by the client (wall) and by the server around the database work "
        f"(`queryTimeMs`), {r['settings']['repeats']} times after a warm-up round, raw and batched alternating:",
        "",
        "| query | p50 wall ms | p95 wall ms | p50 queryTimeMs | p95 queryTimeMs |",
        "|---|---|---|---|---|",
    ]
    labels = {
        "daily-raw": "one day, raw",
        "daily-batched": "one day, batched",
        "period-raw": f"{r['settings']['days']} days, raw",
        "period-batched": f"{r['settings']['days']} days, batched",
    }
    for q in QUERIES:
        lines.append(
            f"| {labels[q]} | {f[q]['wall_p50_ms']} | {f[q]['wall_p95_ms']} | {f[q]['server_p50_ms']} "
            f"| {f[q]['server_p95_ms']} |"
        )
    lines += [
        "",
        f"**Batched is {r['ratio_raw_over_batched_p50']['daily']}x faster for one day and "
        f"{r['ratio_raw_over_batched_p50']['period']}x faster for {r['settings']['days']} days** (p50 wall). "
        f"Raw and batched answers differed {r['mismatches']} times.",
        "",
        "The raw query is given a fair chance: a covering index `(decided_at, campaign_id, status)` turns each day "
        "into one index range scan, no table rows are read. Its cost still grows with the rows of the period; "
        "the batched query reads one row per campaign and day.",
        "",
    ]
    return lines


if __name__ == "__main__":
    main()
