"""What the worker's request-id check costs: one backlog drained with the check and without it.

The worker decides only events whose request id the API signed for their campaign and user (I8).
This publishes one backlog of signed requests, then drains it `--runs` times in each mode,
alternating (with the check, then with the check replaced by one that accepts everything), each
drain into a fresh database by a fresh consumer group, and reports the medians of messages per
second and worker CPU per 1,000 messages, side by side. Results go to docs/benchmarks/verification.*.

    python -m bench.verification [--messages 100000] [--runs 3] [--compare-with DIR ...]

With `--compare-with`, the worker of each other checkout (e.g. a `git worktree` of a former commit) drains
the same backlog in the same rounds, with the check, in a process of its own importing that checkout's code.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any
from unittest import mock

from bench.common import ROOT, commit_of, run_header, save_json
from bench.consumer_design import backlog, drain, prepare_database, publish
from fcfs.kafka import delete_topics, ensure_topics
from fcfs.settings import Settings, get_settings

MODES = ("checked", "unchecked")
# the same drain as `drain` below, run by another checkout's code (its bench.consumer_design has the same API)
DRIVER = """
import json, sys
from bench.consumer_design import drain, prepare_database
from fcfs.settings import get_settings
topic, database, campaigns, group, batch = sys.argv[1:6]
settings = get_settings().model_copy(update={"kafka_topic": topic, "worker_metrics_port": 0})
engine = prepare_database(database, int(campaigns), 10**6)
print("RESULT " + json.dumps(drain(settings, engine, group, int(batch), None)))
"""


def drain_with(checkout: Path, settings: Settings, database: str, campaigns: int, batch_size: int) -> dict[str, Any]:
    """One drain by the worker of another checkout of the project, in a process of its own."""
    env = {
        **os.environ,
        "PYTHONPATH": str(checkout),
        "DATABASE_URL": settings.database_url,
        "KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
        "REQUEST_ID_SECRET": settings.request_id_secret.get_secret_value(),
    }
    group = f"bench-verification-{uuid.uuid4().hex[:8]}"
    command = [sys.executable, "-c", DRIVER, settings.kafka_topic, database, str(campaigns), group, str(batch_size)]
    done = subprocess.run(command, cwd=checkout, env=env, capture_output=True, text=True, check=True, timeout=600)
    line = next(line for line in done.stdout.splitlines() if line.startswith("RESULT "))
    result: dict[str, Any] = json.loads(line.removeprefix("RESULT "))
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--campaigns", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=get_settings().worker_batch_size)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--database", default="fcfs_bench_verification")
    parser.add_argument("--out-dir", type=Path, default=ROOT / "docs" / "benchmarks")
    parser.add_argument("--compare-with", nargs="*", type=Path, default=[], help="other checkouts' workers too")
    parser.add_argument("--out", default="verification", help="file name (without suffix) of the results")
    args = parser.parse_args()
    others = {f"checked at {commit_of(c.resolve())}": c.resolve() for c in args.compare_with}
    modes = (*MODES, *others)

    settings = get_settings().model_copy(
        update={"kafka_topic": f"bench-verification-{uuid.uuid4().hex[:8]}", "worker_metrics_port": 0}
    )
    ensure_topics(settings)
    publish(settings, backlog(args.messages, args.campaigns, seed=7))
    runs: dict[str, list[dict[str, Any]]] = {mode: [] for mode in modes}
    try:
        for _ in range(args.runs):
            for mode in modes:
                if mode in others:
                    run = drain_with(others[mode], settings, f"{args.database}_other", args.campaigns, args.batch_size)
                    assert run["decided"] == args.messages, run
                    runs[mode].append(run)
                    print(mode, run["messages_per_s"], "messages/s", flush=True)
                    continue
                with contextlib.ExitStack() as stack:
                    if mode == "unchecked":  # the worker's check replaced by one that accepts every event
                        stack.enter_context(mock.patch("worker.worker.unsigned", lambda _signer, _event: None))
                    engine = prepare_database(f"{args.database}_{mode}", args.campaigns, 10**6)
                    stack.callback(engine.dispose)
                    group = f"bench-verification-{uuid.uuid4().hex[:8]}"
                    run = drain(settings, engine, group, args.batch_size, None)
                assert run["decided"] == args.messages, run
                runs[mode].append(run)
                print(mode, run["messages_per_s"], "messages/s", flush=True)
    finally:
        delete_topics(settings, [settings.kafka_topic, settings.dlq_topic])

    def median(mode: str, key: str) -> float:
        return float(statistics.median(r[key] for r in runs[mode]))

    medians = {
        mode: {
            "messages_per_s": median(mode, "messages_per_s"),
            "cpu_s_per_1000": median(mode, "worker_cpu_s_per_1000"),
        }
        for mode in modes
    }
    result = {
        **run_header(args),
        "runs": runs,
        "medians": medians,
        "throughput_ratio": round(medians["checked"]["messages_per_s"] / medians["unchecked"]["messages_per_s"], 3),
        "cpu_us_per_message": round(
            (medians["checked"]["cpu_s_per_1000"] - medians["unchecked"]["cpu_s_per_1000"]) * 1000, 1
        ),
    }
    out: Path = args.out_dir
    out.mkdir(parents=True, exist_ok=True)
    save_json(out / f"{args.out}.json", result)
    compared = "".join(f" --compare-with {c.name}" for c in args.compare_with)
    lines = [
        "# The worker's request-id check",
        "",
        f"`python -m bench.verification --messages {args.messages} --runs {args.runs}{compared}` — "
        f"{result['machine']['cpus']} cores, {result['measured_at']}; "
        f"medians of {args.runs} drains per mode, alternating.",
        "",
        "| worker | messages/s (median) | min – max | worker CPU s per 1,000 messages |",
        "|---|---:|---:|---:|",
        *(
            f"| {mode} | {medians[mode]['messages_per_s']:,.0f} | "
            f"{min(r['messages_per_s'] for r in runs[mode]):,} – {max(r['messages_per_s'] for r in runs[mode]):,} | "
            f"{medians[mode]['cpu_s_per_1000']:.4f} |"
            for mode in modes
        ),
        "",
        f"With the check the worker drains at {result['throughput_ratio']:.0%} of its rate without it; "
        f"the check costs about {result['cpu_us_per_message']} µs of worker CPU per message.",
    ]
    (out / f"{args.out}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
