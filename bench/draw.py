"""How long a draw holds its campaign: deciding a pre-queue of N held requests at the opening.

A fresh database gets, per run, one campaign with a DRAW pre-queue of N held requests (rows written by the server
itself, from MariaDB's sequence engine: a tenth of the users twice) and stock N/10; then the draw runs as the
worker runs it — one transaction under the campaign's row lock: read the pre-queue, digest it, order it, write
the history rows in that order with the counters. The lock is held for the whole draw, so requests after the
opening wait that long for their decision (none is lost or reordered). Each size is drawn `--repeat` times
(medians). The draw is then checked as anyone would check it (`fcfs.draw.verify`), timed too.

    python -m bench.draw [--held 10000 100000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, text

from bench.common import ROOT, fresh_database, heading, run_header, save_json
from fcfs.db import make_engine, utcnow
from fcfs.draw import commitment, draw, held_requests, new_seed, verify
from fcfs.schema import PreQueueOrder

BENCHMARKS = ROOT / "docs" / "benchmarks"


def fill(engine: Engine, held: int) -> tuple[int, str, int]:
    """A campaign whose DRAW pre-queue holds `held` requests (users 1 … 0.9 × held; the last tenth repeat)."""
    seed, stock = new_seed(), max(held // 10, 1)
    users = max(held * 9 // 10, 1)
    now = utcnow()
    with engine.begin() as conn:
        campaign_id = int(
            conn.execute(
                text(
                    "INSERT INTO campaign (name, total_stock, current_stock, created_at, starts_at, kafka_partition, "
                    "pre_queue_seconds, pre_queue_order, draw_seed, draw_commitment, pre_queued_count) VALUES "
                    "('draw benchmark', :s, :s, :t, :t, 0, 3600, 'DRAW', :seed, :c, :n)"
                ),
                {"s": stock, "t": now, "seed": seed, "c": commitment(seed), "n": held},
            ).lastrowid
        )
        conn.execute(
            text(
                "INSERT INTO pre_queue (campaign_id, request_id, user_id, kafka_partition, kafka_offset, requested_at, "
                f"queued_at) SELECT :cid, CONCAT('draw-', :cid, '-', seq), 1 + (seq - 1) MOD :users, 0, seq - 1, "
                f":t - INTERVAL seq MICROSECOND, :t FROM seq_1_to_{int(held)}"
            ),
            {"cid": campaign_id, "users": users, "t": now},
        )
    return campaign_id, seed, stock


def one_draw(engine: Engine, held: int) -> dict[str, Any]:
    campaign_id, seed, stock = fill(engine, held)
    started = time.perf_counter()
    with engine.begin() as conn:
        conn.exec_driver_sql("SELECT id FROM campaign WHERE id = %s FOR UPDATE", (campaign_id,))
        drawn = draw(
            conn,
            campaign_id,
            stock=stock,
            order=PreQueueOrder.DRAW,
            seed=seed,
            claim_seconds=0,
            now=utcnow(),
        )
    locked_s = time.perf_counter() - started
    assert drawn.held == held and drawn.winners == stock, drawn
    with engine.connect() as conn:
        digest, winners = conn.execute(
            text("SELECT pre_queue_digest, draw_winners FROM campaign WHERE id = :c"), {"c": campaign_id}
        ).one()
        statuses: dict[str, Any] = dict(
            conn.execute(
                text(
                    "SELECT q.request_id, h.status FROM pre_queue q JOIN participation_history h "
                    "ON h.request_id = q.request_id WHERE q.campaign_id = :c"
                ),
                {"c": campaign_id},
            ).all()
        )
        queue = held_requests(conn, campaign_id)
    rows = [
        {
            "requestId": h.entry.request_id,
            "userId": str(h.entry.user_id),
            "kafkaPartition": str(h.entry.partition),
            "kafkaOffset": str(h.entry.offset),
            "status": str(statuses[h.entry.request_id]),
            "promoted": "false",
        }
        for h in queue
    ]
    state = {
        "preQueueOrder": "DRAW",
        "drawSeed": seed,
        "drawCommitment": commitment(seed),
        "drawnAt": "drawn",
        "preQueueDigest": digest,
        "drawWinners": winners,
    }
    started = time.perf_counter()
    checked = verify(state, rows, None)
    verify_s = time.perf_counter() - started
    assert checked.ok, checked.lines
    return {"locked_s": locked_s, "verify_s": verify_s}


def measure(engine: Engine, sizes: list[int], repeat: int) -> list[dict[str, Any]]:
    results = []
    for held in sizes:
        runs = [one_draw(engine, held) for _ in range(repeat)]
        locked = statistics.median(r["locked_s"] for r in runs)
        checked = statistics.median(r["verify_s"] for r in runs)
        result = {
            "held": held,
            "stock": max(held // 10, 1),
            "runs": [round(r["locked_s"], 3) for r in runs],
            "locked_s": round(locked, 3),
            "rows_per_s": round(held / locked),
            "verify_s": round(checked, 3),
        }
        print(result, flush=True)
        results.append(result)
    return results


def report(r: dict[str, Any]) -> list[str]:
    lines = [
        *heading("The draw — deciding a pre-queue at the opening", "bench.draw", r, ["held", "repeat"]),
        "",
        "One campaign per run with a DRAW pre-queue of N held requests (a tenth of them a user's second request), "
        "stock N/10, drawn as the worker draws it: one transaction under the campaign's row lock. Medians of "
        f"{r['settings']['repeat']} runs; each run's time in brackets.",
        "",
        "| held | stock | campaign locked for | requests decided/s | `verify` (anyone's check) |",
        "|---|---|---|---|---|",
    ]
    for x in r["result"]:
        runs = ", ".join(f"{s:g}" for s in x["runs"])
        locked = f"{x['locked_s']:g} s ({runs})"
        lines.append(f"| {x['held']:,} | {x['stock']:,} | {locked} | {x['rows_per_s']:,} | {x['verify_s']:g} s |")
    lines += [
        "",
        "While the draw holds the lock, the requests after the opening wait for their decision (they are in the log: "
        "none is lost, and they are decided after the pre-queue, in log order). Size the pre-queue window with this: "
        "the door's rate limits bound how fast it fills.",
        "",
    ]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--held", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--database", default="fcfs_bench_draw")
    parser.add_argument("--out-dir", type=Path, default=BENCHMARKS)
    args = parser.parse_args()
    engine = make_engine(fresh_database(args.database), pool_size=1)
    try:
        result = measure(engine, args.held, args.repeat)
    finally:
        engine.dispose()
    figures = {"benchmark": "draw", **run_header(args), "result": result}
    save_json(args.out_dir / "draw.json", figures)
    (args.out_dir / "draw.md").write_text("\n".join(report(figures)))


if __name__ == "__main__":
    main()
