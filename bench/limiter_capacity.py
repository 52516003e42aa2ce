"""How many keys the bot limits' table holds, and what happens past that: N distinct keys, all live (taken
within the refill time), put into a fresh table of the shipped size through the real `SharedBuckets`; the
share of keys that found no slot of their own (they share their group's overflow bucket: stricter, never
looser), and what one `take()` costs. Results go to docs/benchmarks/limiter-capacity.*.

    python -m bench.limiter_capacity [--keys 100000 200000 400000 600000 800000 917504 1200000]
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path
from typing import Any

from backend.door.rate_limit import GROUPS, KEYED, USER, SharedBuckets
from bench.common import ROOT, heading, run_header, save_json

DEFAULT_KEYS = (100_000, 200_000, 400_000, 600_000, 800_000, 917_504, 1_200_000)


def fill(keys: int) -> dict[str, Any]:
    """`keys` distinct user keys taken at the same moment into a fresh, shipped-size table."""
    buckets = SharedBuckets()
    names = [b"u:%d" % (10_000_000 + n) for n in range(keys)]
    started = time.perf_counter()
    for name in names:
        buckets.take(name, 2.0, 5, now=1_000.0, table=USER)
    per_take_us = (time.perf_counter() - started) / keys * 1e6
    shared = sum(not buckets.holds(name, USER) for name in names)
    buckets.close()
    return {
        "keys": keys,
        "shared_overflow": shared,
        "shared_percent": round(shared / keys * 100, 3),
        "take_us": round(per_take_us, 2),
    }


def report(r: dict[str, Any]) -> list[str]:
    lines = [
        *heading("The bot limits' capacity", "bench.limiter_capacity", r, ["keys"]),
        "",
        f"One table per limit: {r['groups']:,} groups of {r['keyed']} keyed slots ({r['groups'] * r['keyed']:,} "
        "keys) and an overflow bucket each, chosen by BLAKE2b keyed per file. A key keeps its slot until its "
        "bucket is full again (burst ÷ rate: 2.5 s for a user at the defaults), so *live* keys are those seen "
        "within that time. A key that finds its group's 7 slots held by live keys shares the group's overflow "
        "bucket: it is never given a fresh full bucket, and no live key is evicted.",
        "",
        "| live keys | sharing an overflow bucket | share | one take() (µs, this process alone) |",
        "|---|---|---|---|",
    ]
    for row in r["rows"]:
        lines.append(f"| {row['keys']:,} | {row['shared_overflow']:,} | {row['shared_percent']}% | {row['take_us']} |")
    lines += [
        "",
        f"take() median {r['median_take_us']} µs over the rows (one process; the door takes twice per request).",
        "",
    ]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--keys", type=int, nargs="+", default=list(DEFAULT_KEYS))
    parser.add_argument("--out-dir", type=Path, default=ROOT / "docs" / "benchmarks")
    args = parser.parse_args()
    rows = []
    for keys in args.keys:
        rows.append(fill(keys))
        print(rows[-1], flush=True)
    result = {
        **run_header(args),
        "groups": GROUPS,
        "keyed": KEYED,
        "rows": rows,
        "median_take_us": round(statistics.median(r["take_us"] for r in rows), 2),
    }
    save_json(args.out_dir / "limiter-capacity.json", result)
    (args.out_dir / "limiter-capacity.md").write_text("\n".join(report(result)))
    print("\n".join(report(result)))


if __name__ == "__main__":
    main()
