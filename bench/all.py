"""Every experiment and benchmark, one after the other, each rewriting its page under docs/: the next round
refreshes every figure at once.

    python -m bench.all [--only NAME ...] [--skip NAME ...] [--dry-run]

The list below says what runs, with the arguments of the figures the docs quote, and about how long each takes
on the reference machine (2 cores): ~35 minutes in all (`--dry-run` adds them up). Each runs in a process of
its own; one that fails is reported and the others still run. At the end, a summary of what ran, how long it
took and where its figures went (docs/experiments/all.md); the exit status is non-zero if any failed.
"""

from __future__ import annotations

import argparse
import datetime as dt
import subprocess
import sys
import time
from dataclasses import dataclass

from bench.common import EXPERIMENTS, ROOT


@dataclass(frozen=True)
class Experiment:
    name: str
    arguments: tuple[str, ...]
    minutes: float  # about, on the reference machine
    page: str  # where its figures go, under docs/

    @property
    def command(self) -> list[str]:
        return [sys.executable, "-m", f"bench.{self.name}", *self.arguments]


PLAN = (
    Experiment("consumer_design", ("--single-messages", "5000"), 4, "experiments/consumer-design.md"),
    Experiment("verification", ("--runs", "5"), 1.5, "benchmarks/verification.md"),
    Experiment(
        "ingest",
        ("--duration", "10", "--other-server", "--drain-backlog", "300000", "--profile"),
        8,
        "experiments/ingest.md",
    ),
    Experiment("per_call", (), 0.5, "benchmarks/per-call.md"),
    Experiment("partitions", (), 5, "experiments/partitions.md"),
    Experiment("sync_vs_kafka", (), 0.5, "experiments/sync-vs-kafka.md"),
    Experiment("raw_vs_batch", (), 5, "experiments/raw-vs-batch.md"),
    Experiment("ops_plane", (), 4, "benchmarks/ops-plane.md"),
    Experiment("dashboard_poll", (), 0.5, "benchmarks/dashboard-poll.md"),
    Experiment("winners_export", (), 1, "benchmarks/winners-export.md"),
    Experiment("draw", (), 1, "benchmarks/draw.md"),
    Experiment("limiter_capacity", (), 0.5, "benchmarks/limiter-capacity.md"),
    Experiment("lookups", (), 4, "benchmarks/lookups.md"),
)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", nargs="*", default=[], help="only these (by module name)")
    parser.add_argument("--skip", nargs="*", default=[], help="all but these")
    parser.add_argument("--dry-run", action="store_true", help="print the plan, run nothing")
    args = parser.parse_args()
    plan = [e for e in PLAN if (not args.only or e.name in args.only) and e.name not in args.skip]
    print(f"{len(plan)} runs, about {sum(e.minutes for e in plan):.0f} minutes:")
    for e in plan:
        print(f"  ~{e.minutes:g} min  python -m bench.{e.name} {' '.join(e.arguments)}".rstrip())
    if args.dry_run:
        return 0
    done: list[tuple[Experiment, int, float]] = []
    for e in plan:
        print(f"\n== python -m bench.{e.name} {' '.join(e.arguments)}", flush=True)
        started = time.monotonic()
        code = subprocess.run(e.command, cwd=ROOT, check=False).returncode
        done.append((e, code, time.monotonic() - started))
    lines = [
        "# Every experiment, one run",
        "",
        f"`python -m bench.all` — {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC.",
        "",
        "| command | took | result | figures |",
        "|---|---:|---|---|",
        *(
            f"| `python -m bench.{e.name} {' '.join(e.arguments)}` | {seconds / 60:.1f} min | "
            f"{'ok' if code == 0 else f'FAILED (exit {code})'} | [{e.page}](../{e.page}) |"
            for e, code, seconds in done
        ),
    ]
    (EXPERIMENTS / "all.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0 if all(code == 0 for _, code, _ in done) else 1


if __name__ == "__main__":
    sys.exit(main())
