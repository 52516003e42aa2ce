"""The look-up after a storm: polls of decided requests next to the door's intake, and held look-ups.

**Polls.** `--requests` clicks of one campaign are decided by the worker while the API runs; then 1,000
connections (wrk, closed loop) look them up at random, each with its ticket as the participant page sends
it, in turn with rounds of the participation intake (wrk, new users each request), `--rounds` of each,
the order swapped every round. The database's own statement counter (`Com_select`) over each look-up
round gives its reads per look-up (the API's own background work included).

**Held.** Each round: `--waiters` clicks not yet decided (no worker running), and as many users waiting
for them at once (one look-up each, `waitSeconds=30`, sent within a second by vegeta processes of 1,000
users, each from a loopback address of its own — Go, a fraction of the CPU a Python client takes for the same
answers, so the clients steal less of the 2 cores the server works on); the intake measured while they are
held, and alone (before them, or after them: the order swapped every round); then the worker decides
everything and each waiting user's answer is compared with its row's `decided_at` (the time from the
decision to the answer, the worker's commit included): when vegeta received it (its send time + its
latency) and when the server answered it (its `fcfs_held_answer_after_decision_seconds` histogram, to the
bucket).

Writes docs/benchmarks/lookups.{md,json}.

    python -m bench.lookups [--requests 20000] [--waiters 20000] [--clients 1000] [--duration 10] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import datetime as dt
import ipaddress
import math
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import orjson
import psutil
from sqlalchemy import create_engine, select, text

from bench.common import (
    ROOT,
    apart,
    api_processes,
    cpu_seconds_of,
    fresh_database,
    heading,
    percentile,
    run_header,
    save_json,
    served_api,
    spread,
)
from bench.loadgen import WRK_DONE, WRK_THREADS, attack, run_wrk, tool_binary
from fcfs.kafka import delete_topics, ensure_topics
from fcfs.schema import participation_history
from fcfs.settings import get_settings

OUT = ROOT / "docs" / "benchmarks"
ADDRESS_BASE = int(ipaddress.IPv4Address("127.78.0.1"))
WRK_LOOKUPS = (
    WRK_THREADS
    + """
function init(args)
  paths = {}
  for line in io.lines(args[1]) do paths[#paths + 1] = line end
  math.randomseed(tid * 7919 + os.time())
end
function request()
  return wrk.format("GET", paths[math.random(#paths)])
end
"""
    + WRK_DONE
)


def selects(engine: Any) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text("SHOW GLOBAL STATUS LIKE 'Com_select'")).one()[1])


async def click_all(base: str, campaign_id: int, users: range) -> list[dict[str, Any]]:
    """The tickets of `users` clicks (200 at once; aiohttp sends each request's headers and body in one write, as
    a browser's small POST does: a starved client that sends the body later meets the door's body deadline)."""
    connector = aiohttp.TCPConnector(limit=200)
    async with aiohttp.ClientSession(base, connector=connector, timeout=aiohttp.ClientTimeout(total=60)) as client:

        async def one(user: int) -> dict[str, Any]:
            async with client.post(f"/api/campaigns/{campaign_id}/participation", json={"userId": user}) as r:
                r.raise_for_status()
                data: dict[str, Any] = (await r.json())["data"]
                return data

        return list(await asyncio.gather(*(one(u) for u in users)))


def drain(env: dict[str, str]) -> None:
    """The worker decides everything in the topic, then exits."""
    subprocess.run([sys.executable, "-m", "worker", "--drain"], cwd=ROOT, env=env, check=True, timeout=600)


WAITERS_PER_CLIENT = 1_000  # the users one vegeta process holds, from an address of its own (an address may hold
# WAIT_MAX_PER_CLIENT look-ups at once)


class Waiters:
    """Users waiting for their outcome at once, each by one look-up held until decided (`waitSeconds=30`): vegeta
    (Go) processes of WAITERS_PER_CLIENT users, each from a loopback address of its own, that send every user's
    look-up within a second and record when each answer arrived (its send time + its latency)."""

    def __init__(self, base: str, campaign_id: int, tickets: list[dict[str, Any]], folder: Path) -> None:
        self.vegeta = tool_binary("vegeta")
        self.chunks = [tickets[n : n + WAITERS_PER_CLIENT] for n in range(0, len(tickets), WAITERS_PER_CLIENT)]
        self.results = [folder / f"waiters-{campaign_id}-{n}.bin" for n in range(len(self.chunks))]
        self.targets = [folder / f"waiters-{campaign_id}-{n}.txt" for n in range(len(self.chunks))]
        for chunk, targets in zip(self.chunks, self.targets, strict=True):
            targets.write_text(
                "".join(
                    f"GET {base}/api/campaigns/{campaign_id}/participation/{t['requestId']}"
                    f"?partition={t['partition']}&offset={t['offset']}&waitSeconds=30\n\n"
                    for t in chunk
                )
            )
        self.processes: list[subprocess.Popen[bytes]] = []
        self.failures: Counter[str] = Counter()  # the look-ups that did not end with the outcome, by what they met

    def start(self) -> None:
        for n, (chunk, targets, results) in enumerate(zip(self.chunks, self.targets, self.results, strict=True)):
            # each target once (read lazily: the attack stops at their end), over about a second, by a worker each
            command = [self.vegeta, "attack", "-lazy", f"-targets={targets}", f"-rate={len(chunk)}/1s", "-duration=0"]
            command += [f"-workers={len(chunk) + 1}", f"-max-workers={len(chunk) + 1}"]
            command += ["-timeout=45s", f"-laddr={ipaddress.IPv4Address(ADDRESS_BASE + n)}", f"-output={results}"]
            self.processes.append(subprocess.Popen(command, stderr=subprocess.DEVNULL))

    def join(self, timeout_s: float) -> tuple[dict[str, float], int]:
        """When each waiting user learned the outcome (epoch seconds), and the look-ups that ended otherwise
        (an error, or PENDING at the end of the wait)."""
        answered: dict[str, float] = {}
        errors = 0
        deadline = time.monotonic() + timeout_s
        for proc, results in zip(self.processes, self.results, strict=True):
            try:
                proc.wait(max(deadline - time.monotonic(), 0))
            except subprocess.TimeoutExpired:
                proc.kill()
                continue
            encoded = subprocess.run(
                [self.vegeta, "encode", "-to=json", str(results)], capture_output=True, check=True, text=True
            ).stdout
            for line in encoded.splitlines():
                hit = orjson.loads(line)
                if hit["error"] == "no targets to attack":  # (the tick after the last target: the attack's end)
                    continue
                body = orjson.loads(base64.b64decode(hit["body"])) if hit["code"] == 200 else None
                if body is None or body["data"]["status"] == "PENDING":
                    errors += 1
                    self.failures[hit["error"] or f"{hit['code']} {body and body['data']['status']}"] += 1
                    continue
                answered[body["data"]["requestId"]] = epoch(hit["timestamp"]) + hit["latency"] / 1e9
        return answered, errors


GO_TIME = re.compile(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)")


def epoch(stamp: str) -> float:
    """Go's RFC 3339 time with nanoseconds (as vegeta writes it) in epoch seconds."""
    found = GO_TIME.fullmatch(stamp)
    if found is None:
        raise ValueError(f"not an RFC 3339 time: {stamp!r}")
    whole, fraction, zone = found.groups()
    at = dt.datetime.fromisoformat(whole + ("+00:00" if zone == "Z" else zone))
    return at.timestamp() + float(f"0{fraction or ''}")


class Spent:
    """The CPU seconds the watched processes spend, and the seconds that pass, from now on."""

    def __init__(self, watched: list[psutil.Process]) -> None:
        self.watched = watched
        self.cpu0, self.t0 = cpu_seconds_of(watched), time.monotonic()

    def cpu_s(self, idle_per_s: float = 0.0) -> float:
        """Spent so far; with `idle_per_s`, beyond what the processes spend idle in as long."""
        return cpu_seconds_of(self.watched) - self.cpu0 - idle_per_s * self.seconds()

    def seconds(self) -> float:
        return time.monotonic() - self.t0


def held_now(base: str) -> float:
    """The look-ups the API's processes hold now (multiprocess metrics: summed over them)."""
    text = httpx.get(f"{base}/metrics", timeout=10).text
    return sum(float(line.split()[-1]) for line in text.splitlines() if line.startswith("fcfs_lookups_held"))


HELD_ANSWER = "fcfs_held_answer_after_decision_seconds"


def held_answers(base: str) -> dict[float, float]:
    """The API's held answers so far by the upper bound of their time after the decision (cumulative buckets
    of its histogram, summed over its processes)."""
    text = httpx.get(f"{base}/metrics", timeout=10).text
    buckets: dict[float, float] = {}
    for line in text.splitlines():
        if line.startswith(HELD_ANSWER + "_bucket"):
            bound = line.split('le="', 1)[1].split('"', 1)[0]
            buckets[float(bound)] = buckets.get(float(bound), 0.0) + float(line.split()[-1])
    return buckets


def bucket_quantiles(before: dict[float, float], after: dict[float, float]) -> dict[str, Any]:
    """How many held answers came between two readings, and the bucket bound their p50 and p99 fall under."""
    counts = sorted((bound, after.get(bound, 0.0) - before.get(bound, 0.0)) for bound in after)
    total = counts[-1][1] if counts else 0.0

    def under(q: float) -> float | None:
        return next((bound for bound, cumulative in counts if cumulative >= q * total), None) if total else None

    return {"answers": round(total), "p50_at_most_s": under(0.5), "p99_at_most_s": under(0.99)}


def bound(seconds: float | None) -> str:
    """A bucket's upper bound as the report says it."""
    if seconds is None:
        return "-"
    return "over 30 s" if math.isinf(seconds) else f"{seconds:g} s"


def measure(args: argparse.Namespace) -> dict[str, Any]:
    settings = get_settings()
    url = fresh_database(args.database)
    engine = create_engine(url)
    topic = f"bench-lookups-{uuid.uuid4().hex[:8]}"
    env = {"DATABASE_URL": url, "KAFKA_TOPIC": topic, "KAFKA_CONSUMER_GROUP": f"{topic}-group"}
    topic_settings = settings.model_copy(update={"kafka_topic": topic, "kafka_consumer_group": f"{topic}-group"})
    worker_env = {**os.environ, **env, "WORKER_METRICS_PORT": "0"}
    ensure_topics(topic_settings)
    h = participation_history.c
    folder = Path(tempfile.mkdtemp(prefix="bench-lookups-"))
    metrics = folder / "metrics"
    metrics.mkdir()
    try:
        with (
            served_api({**env, "PROMETHEUS_MULTIPROC_DIR": str(metrics)}, workers=2) as (base, token),
            httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=60) as admin,
        ):

            def campaign(name: str, stock: int) -> int:
                created = admin.post("/api/admin/campaigns", json={"name": name, "totalStock": stock})
                created.raise_for_status()
                return int(created.json()["data"]["id"])

            watched = api_processes(base)
            intake_campaign = campaign("intake", 100_000_000)
            participate = f"{base}/api/campaigns/{intake_campaign}/participation"
            polled = campaign("polled", max(args.requests // 20, 1))
            tickets = asyncio.run(click_all(base, polled, range(1, args.requests + 1)))
            drain(worker_env)
            time.sleep(1)  # a feed round after the last decision
            with tempfile.NamedTemporaryFile("w") as paths:
                paths.write(
                    "".join(
                        f"/api/campaigns/{polled}/participation/{t['requestId']}"
                        f"?partition={t['partition']}&offset={t['offset']}\n"
                        for t in tickets
                    )
                )
                paths.flush()
                lookups: list[dict[str, Any]] = []
                intakes: list[dict[str, Any]] = []
                user = 10**9
                for n in range(args.rounds):
                    for kind in ("lookups", "intake") if n % 2 == 0 else ("intake", "lookups"):
                        if kind == "lookups":
                            before = selects(engine)
                            r = run_wrk(base, args.clients, args.duration, WRK_LOOKUPS, paths.name, watched)
                            r["selects_per_lookup"] = round((selects(engine) - before) / max(r["requests"], 1), 4)
                            lookups.append(r)
                        else:
                            user += 10**8
                            intakes.append(
                                attack(
                                    participate,
                                    clients=args.clients,
                                    duration_s=args.duration,
                                    first_user=user,
                                    watched=watched,
                                )
                            )
                        print(kind, (lookups if kind == "lookups" else intakes)[-1], flush=True)
            drain(worker_env)

            held_rounds: list[dict[str, Any]] = []
            for n in range(args.rounds):
                alone_first = n % 2 == 0  # alone before the waiters, or after them: the order swapped every round
                if alone_first:
                    user += 10**8
                    alone = attack(
                        participate, clients=args.clients, duration_s=args.duration, first_user=user, watched=watched
                    )
                waited_campaign = campaign(f"held {n}", max(args.waiters // 20, 1))
                pending = asyncio.run(click_all(base, waited_campaign, range(1, args.waiters + 1)))
                waiters = Waiters(base, waited_campaign, pending, folder)
                idle = Spent(watched)  # the API's own background work meanwhile, subtracted from the waiters' cost
                time.sleep(2)
                idle_per_s = idle.cpu_s() / idle.seconds()
                taking = Spent(watched)
                waiters.start()
                deadline = time.monotonic() + 90
                while held_now(base) < len(pending) and time.monotonic() < deadline:
                    time.sleep(0.5)
                held_at_start = held_now(base)
                taking_cpu_s = taking.cpu_s(idle_per_s)
                user += 10**8
                held = attack(
                    participate, clients=args.clients, duration_s=args.duration, first_user=user, watched=watched
                )
                served_before = held_answers(base)
                answering = Spent(watched)
                drain(worker_env)
                answered, waiting_errors = waiters.join(120)
                answering_cpu_s = answering.cpu_s(idle_per_s)
                served = bucket_quantiles(served_before, held_answers(base))
                with engine.connect() as conn:
                    decided = {  # stored naive, in UTC
                        rid: at.replace(tzinfo=dt.UTC).timestamp()
                        for rid, at in conn.execute(
                            select(h.request_id, h.decided_at).where(h.campaign_id == waited_campaign)
                        )
                    }
                late_ms = [(at - decided[rid]) * 1000 for rid, at in answered.items() if rid in decided]
                if not alone_first:
                    user += 10**8
                    alone = attack(
                        participate, clients=args.clients, duration_s=args.duration, first_user=user, watched=watched
                    )
                result = {
                    "waiters": len(pending),
                    "held_before_intake": round(held_at_start),
                    "answered": len(answered),
                    "errors": waiting_errors,
                    "failures": dict(waiters.failures.most_common(5)),
                    "answer_after_decision_ms": {
                        "p50": round(percentile(late_ms, 50)),
                        "p99": round(percentile(late_ms, 99)),
                        "max": round(max(late_ms)),
                    }
                    if late_ms
                    else None,
                    "server_answer_after_decision": served,
                    "held_api_cpu_us_each": round((taking_cpu_s + answering_cpu_s) / len(pending) * 1e6),
                    "held_taking_api_cpu_us_each": round(taking_cpu_s / len(pending) * 1e6),  # the look-up's arrival
                    "intake_api_cpu_us_each": round(alone["api_cpu_s"] / max(alone["requests"], 1) * 1e6),
                    "intake_alone_per_s": alone["requests_per_s"],
                    "intake_held_per_s": held["requests_per_s"],
                    "intake_errors": alone["errors"] + held["errors"],
                }
                print("held", result, flush=True)
                held_rounds.append(result)
    finally:
        delete_topics(topic_settings, [topic, topic_settings.dlq_topic])
        engine.dispose()
        shutil.rmtree(folder, ignore_errors=True)
    return {"lookups": lookups, "intake": intakes, "held": held_rounds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=20_000, help="decided requests looked up at random")
    parser.add_argument("--waiters", type=int, default=20_000, help="users waiting at once, each round")
    parser.add_argument("--clients", type=int, default=1000, help="wrk's connections")
    parser.add_argument("--duration", type=int, default=10, help="seconds of each wrk round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--database", default="fcfs_bench_lookups")
    parser.add_argument("--out-dir", type=Path, default=OUT)
    args = parser.parse_args()
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    with contextlib.suppress(ValueError, OSError):  # the servers' sockets (inherited): as many as allowed
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    figures = {**run_header(args), **measure(args)}
    save_json(args.out_dir / "lookups.json", figures)
    (args.out_dir / "lookups.md").write_text("\n".join(report(figures)) + "\n")


def median_of(rounds: list[dict[str, Any]], *path: str) -> float:
    values = []
    for r in rounds:
        v: Any = r
        for key in path:
            v = v[key]
        values.append(v)
    return float(statistics.median(values))


def report(r: dict[str, Any]) -> list[str]:
    s = r["settings"]
    look, intake, held = r["lookups"], r["intake"], r["held"]
    look_rate, intake_rate = median_of(look, "requests_per_s"), median_of(intake, "requests_per_s")
    lines = [
        *heading(
            "The look-up after a storm", "bench.lookups", r, ["requests", "waiters", "clients", "duration", "rounds"]
        ),
        "",
        f"**Polls**: {s['requests']:,} decided requests looked up at random by {s['clients']:,} connections (wrk, "
        f"closed loop, {s['duration']} s rounds, each with its ticket), in turn with the participation intake; "
        f"medians of {s['rounds']}.",
        "",
        "| | requests/s | p50 ms | p99 ms | errors | database SELECTs per look-up |",
        "|---|---:|---:|---:|---:|---:|",
        f"| look-ups of decided requests | {look_rate:,.0f} | {median_of(look, 'latency_ms', 'p50')} "
        f"| {median_of(look, 'latency_ms', 'p99')} | {sum(x['errors'] for x in look)} "
        f"| {median_of(look, 'selects_per_lookup')} |",
        f"| participation intake | {intake_rate:,.0f} | {median_of(intake, 'latency_ms', 'p50')} "
        f"| {median_of(intake, 'latency_ms', 'p99')} | {sum(x['errors'] for x in intake)} | |",
        "",
        f"Look-ups ÷ intake: **{look_rate / intake_rate:.2f}**. Rounds: look-ups "
        + " / ".join(f"{x['requests_per_s']:,}" for x in look)
        + "; intake "
        + " / ".join(f"{x['requests_per_s']:,}" for x in intake)
        + ".",
        "",
        f"**Held**: {s['waiters']:,} users waiting at once (held look-ups, `waitSeconds=30`) for requests not yet "
        "decided; the intake while they are held and alone (before or after them, in turn); then the worker "
        "decides, and each answer's "
        "arrival is compared with its row's `decided_at` (the worker's clock when it began the batch, before its "
        "commit): as the waiting users received it (vegeta, Go, 1,000 users a process: its send time + its "
        "latency; the clients share the 2 cores with the server, the worker, the broker and the database) and as "
        f"the server answered it (its `{HELD_ANSWER}` histogram, to the bucket).",
        "",
        "| round | waiting | answered | received by the clients after the decision p50 / p99 / max ms "
        "| answered by the server after it, p50 / p99 within | intake alone /s | intake while held /s | change |",
        "|---|---:|---:|---|---|---:|---:|---:|",
    ]
    for n, x in enumerate(held, start=1):
        a = x["answer_after_decision_ms"] or {"p50": "-", "p99": "-", "max": "-"}
        served = x.get("server_answer_after_decision") or {}
        within = " / ".join(bound(served.get(q)) for q in ("p50_at_most_s", "p99_at_most_s"))
        change = x["intake_held_per_s"] / x["intake_alone_per_s"] - 1
        lines.append(
            f"| {n} | {x['waiters']:,} | {x['answered']:,} | {a['p50']} / {a['p99']} / {a['max']} | {within} "
            f"| {x['intake_alone_per_s']:,} | {x['intake_held_per_s']:,} | {change:+.1%} |"
        )
    if held:
        received = [x["answer_after_decision_ms"] for x in held if x["answer_after_decision_ms"]]
        if received:
            p50s, p99s = [a["p50"] for a in received], [a["p99"] for a in received]
            lines += [
                "",
                f"Received after the decision: p50 {statistics.median(p50s):,.0f} ms ({spread(p50s)}), p99 "
                f"{statistics.median(p99s):,.0f} ms ({spread(p99s)}), medians of the rounds.",
            ]
        costs = [
            (x["intake_api_cpu_us_each"], x["held_api_cpu_us_each"], x["held_taking_api_cpu_us_each"])
            for x in held
            if "held_api_cpu_us_each" in x
        ]
        if costs:
            post, look, take = (statistics.median(c[k] for c in costs) for k in range(3))
            lines += [
                "",
                "A click on the participant page is one `POST` and one look-up held until the decision (tested in "
                f"headless Chromium). In API CPU, medians of the rounds: {post:,.0f} µs for the `POST` (the intake "
                f"alone, over wrk's kept connections, per request), {look:,.0f} µs for its held look-up — opening its "
                f"connection (each waiting user opens one, as a phone opens one for its click; {take:,.0f} µs with "
                "taking the request and holding it), the feed's reads and the answer; the API's idle work "
                f"subtracted: the click **{(post + look) / post:.2f}x** a bare `POST`.",
            ]
        alone, waited = [x["intake_alone_per_s"] for x in held], [x["intake_held_per_s"] for x in held]
        change = statistics.median(waited) / statistics.median(alone) - 1
        verdict = " (the rounds do not overlap)" if apart(alone, waited) else ", within the rounds' spread"
        lines += [
            "",
            f"Intake while {s['waiters']:,} are held: median {statistics.median(waited):,.0f} requests/s "
            f"({spread(waited)}) against {statistics.median(alone):,.0f} ({spread(alone)}) alone: "
            f"**{change:+.1%}**{verdict}.",
        ]
    return lines


if __name__ == "__main__":
    main()
