"""How the winners list streams: `GET /api/admin/campaigns/{id}/winners.csv` for a campaign of N winners.

A fresh database gets one sold-out campaign with N winners (history rows written by the server itself,
from MariaDB's sequence engine), the API is started, and the CSV is downloaded while the API's memory
(resident set of its processes) is sampled every 20 ms. The export reads a page of 10,000 winners at a
time, so its memory must stay flat however many winners there are.

    python -m bench.winners_export [--winners 1000000]
"""

from __future__ import annotations

import argparse
import threading
import time
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import text

from bench.common import ROOT, api_processes, fresh_database, heading, run_header, save_json, served_api
from fcfs.db import make_engine, utcnow

BENCHMARKS = ROOT / "docs" / "benchmarks"


def fill(database_url: str, winners: int) -> int:
    """One sold-out campaign whose `winners` history rows are all SUCCESS, one a microsecond apart."""
    engine = make_engine(database_url, pool_size=1)
    start = utcnow()
    with engine.begin() as conn:
        campaign_id = int(
            conn.execute(
                text(
                    "INSERT INTO campaign (name, total_stock, current_stock, success_count, created_at, sold_out_at, "
                    "kafka_partition) VALUES ('export benchmark', :n, 0, :n, :t, :t + INTERVAL :n MICROSECOND, 0)"
                ),
                {"n": winners, "t": start},
            ).lastrowid
        )
        conn.execute(
            text(
                "INSERT INTO participation_history (request_id, campaign_id, user_id, status, channel, "
                "kafka_partition, kafka_offset, requested_at, decided_at) "
                "SELECT CONCAT('export-', seq), :cid, seq, 'SUCCESS', 'KAFKA', 0, seq - 1, "
                f":t + INTERVAL seq MICROSECOND, :t + INTERVAL seq MICROSECOND FROM seq_1_to_{int(winners)}"
            ),
            {"cid": campaign_id, "t": start},
        )
    engine.dispose()
    return campaign_id


def rss_mb(base_url: str) -> float:
    total = 0
    for process in api_processes(base_url):
        try:
            total += process.memory_info().rss
        except Exception:  # noqa: BLE001 - a process gone meanwhile
            continue
    return total / 2**20


def download(base_url: str, token: str, campaign_id: int) -> dict[str, Any]:
    """Stream the CSV once, counting rows and bytes, with the API's memory sampled meanwhile."""
    samples: list[float] = []
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            samples.append(rss_mb(base_url))
            time.sleep(0.02)

    before = rss_mb(base_url)
    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    lines = size = 0
    started = time.perf_counter()
    url = f"{base_url}/api/admin/campaigns/{campaign_id}/winners.csv"
    with httpx.stream("GET", url, headers={"Authorization": f"Bearer {token}"}, timeout=600) as response:
        response.raise_for_status()
        first_byte = None
        for chunk in response.iter_bytes():
            if first_byte is None:
                first_byte = time.perf_counter() - started
            size += len(chunk)
            lines += chunk.count(b"\n")
    elapsed = time.perf_counter() - started
    done.set()
    sampler.join()
    return {
        "rows": lines - 1,
        "bytes": size,
        "seconds": round(elapsed, 2),
        "rows_per_s": round((lines - 1) / elapsed),
        "first_byte_ms": round((first_byte or 0) * 1000, 1),
        "api_rss_mb_before": round(before, 1),
        "api_rss_mb_peak": round(max(samples, default=before), 1),
        "api_rss_mb_growth": round(max(samples, default=before) - before, 1),
        "samples": len(samples),
    }


def report(r: dict[str, Any]) -> list[str]:
    x = r["result"]
    return [
        *heading("Winners export — the CSV of a big campaign, streamed", "bench.winners_export", r, ["winners"]),
        "",
        f"A campaign with {r['settings']['winners']:,} winners; `GET …/winners.csv` downloaded once while the "
        "API's resident memory (all its processes) is sampled every 20 ms.",
        "",
        "| rows | size | time | rows/s | first byte | API memory before | peak | growth |",
        "|---|---|---|---|---|---|---|---|",
        f"| {x['rows']:,} | {x['bytes'] / 2**20:,.1f} MiB | {x['seconds']} s | {x['rows_per_s']:,} "
        f"| {x['first_byte_ms']} ms | {x['api_rss_mb_before']} MiB | {x['api_rss_mb_peak']} MiB "
        f"| {x['api_rss_mb_growth']} MiB |",
        "",
        "The export reads 10,000 winners at a time by walking the `(campaign_id, decided_at)` index from the "
        "previous page's last row, so memory is one page whatever the campaign's size.",
        "",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--winners", type=int, default=1_000_000)
    parser.add_argument("--database", default="fcfs_bench_export")
    parser.add_argument("--out-dir", type=Path, default=BENCHMARKS)
    args = parser.parse_args()
    url = fresh_database(args.database)
    t0 = time.perf_counter()
    campaign_id = fill(url, args.winners)
    print(f"{args.winners:,} winners written in {time.perf_counter() - t0:.1f} s", flush=True)
    with served_api({"DATABASE_URL": url}) as (base, token):
        result = download(base, token, campaign_id)
    print(result)
    assert result["rows"] == args.winners, result
    figures = {"benchmark": "winners export", **run_header(args), "result": result}
    args.out_dir.mkdir(parents=True, exist_ok=True)
    save_json(args.out_dir / "winners-export.json", figures)
    (args.out_dir / "winners-export.md").write_text("\n".join(report(figures)))


if __name__ == "__main__":
    main()
