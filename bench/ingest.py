"""Ingest: 1,000 concurrent clients against POST /participation, next to its baselines, in one run.

Every server runs at once, each with `--workers` processes; rounds alternate between them, so each
figure has its baselines measured minutes apart on the same machine:

- `participation` — the product as shipped (`python -m backend`: granian, RSGI, the participation door,
  a durable 202 after `acks=all`, validation, signing, limits and metrics on);
- `participation (jwt)` — the same with `USER_AUTH=jwt`: every request carries a user's HS256 bearer
  token (from a pool of pre-minted ones) and an empty body, verified on every request;
- `participation (jwt ES256)` — the same with ES256 tokens, the public key read from a JWKS file (by `kid`);
- `participation (no limits)` — the same without the rate limits (off, not checked), to show their cost
  (every other product server checks them, with limits set out of reach of the one load generator);
- `product no-I/O` — the same server's `participation-noop` (everything but the publishing);
- `bare FastAPI`, `plain ASGI`, `durable ASGI` — the baselines of `bench/baselines.py` on the same
  server: the framework alone, the server alone, and the minimal durable path (the ceiling);
- with `--other-server`, the product and the durable callable on uvicorn as well;
- with `--compare-with DIR …`, the product as other checkouts have it (`participation at <commit>`: a
  `git worktree` of a former commit), served and measured in the same rounds as today's.

Load: wrk (default) or vegeta, closed loop, every request a new user (`bench/loadgen.py`). Checked
every round: no errors, and every 202 of the product is in Kafka — the topic's end offsets grow by
exactly the number of 202s the product counted (`fcfs_participation_requests_total{answer="202"}`,
summed over its processes); with vegeta also the client's count, and with `--check-ids` the request
id of every 202 is looked up in the topic. Reports requests/s, latency, and CPU seconds per 1,000
requests of the API processes and of the Kafka broker. `--drain-backlog N` then measures the
product's intake while a worker drains an N-request backlog at full speed. Medians over the rounds
go to docs/experiments/ingest.{md,json,png}; `--profile` samples an API process with py-spy during
the first round of the product as shipped and of its jwt rows (docs/experiments/ingest-profile*.md).

    python -m bench.ingest [--clients 1000] [--duration 15] [--rounds 3] [--workers 2] [--load wrk|vegeta]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
import psutil
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from joserfc.jwk import ECKey
from pydantic import SecretStr
from sqlalchemy import insert

from backend.app.serve import api_command
from bench.common import (
    EXPERIMENTS,
    ROOT,
    api_processes,
    commit_of,
    cpu_seconds_of,
    free_port,
    fresh_database,
    heading,
    listening_process,
    run_header,
    save_results,
    served,
    spread,
)
from bench.loadgen import attack, profile
from fcfs.db import make_engine, utcnow
from fcfs.kafka import delete_topics, end_offsets, ensure_topics, read_topic
from fcfs.schema import campaign
from fcfs.settings import Settings, get_settings
from fcfs.tokens import mint

PRODUCT = "participation"
JWT = "participation (jwt)"
JWT_ES256 = "participation (jwt ES256)"
JWKS_KID = "bench-es256"
UNLIMITED = "participation (no limits)"
# the endpoints `--profile` samples (in their first round), and the page each profile goes to
PROFILED = {PRODUCT: "ingest-profile", JWT: "ingest-profile-jwt", JWT_ES256: "ingest-profile-es256"}
JWT_SECRET = uuid.uuid4().hex + uuid.uuid4().hex
TOKENS = 20_000  # users with a token; each request takes the next one
DURABLE = "durable ASGI"


@dataclass(frozen=True)
class Endpoint:
    name: str
    server: str  # granian | uvicorn
    target: str  # the ASGI app
    path: str
    product: bool = False  # the product's own server (counts its 202s in /metrics)
    jwt: str = ""  # HS256 | ES256: a server of its own with USER_AUTH=jwt; requests carry bearer tokens
    unlimited: bool = False  # a server of its own without the rate limits (not even checked)
    checkout: Path | None = None  # the product as another checkout of the project has it (a former commit)

    @property
    def server_key(self) -> tuple[str, str, str, bool, str]:
        return self.server, self.target, self.jwt, self.unlimited, str(self.checkout or "")


def checkout_label(checkout: Path) -> str:
    """`participation at <commit>`: the product of another checkout, named by its commit."""
    return f"{PRODUCT} at {commit_of(checkout)}"


def endpoints(other_server: bool, compare_with: list[Path] | None = None) -> list[Endpoint]:
    wanted = [
        Endpoint(PRODUCT, "granian", "backend.app.main:app", "participation", product=True),
        Endpoint(JWT, "granian", "backend.app.main:app", "participation", product=True, jwt="HS256"),
        Endpoint(JWT_ES256, "granian", "backend.app.main:app", "participation", product=True, jwt="ES256"),
        Endpoint(UNLIMITED, "granian", "backend.app.main:app", "participation", product=True, unlimited=True),
        Endpoint("product no-I/O", "granian", "backend.app.main:app", "participation-noop", product=True),
        Endpoint("bare FastAPI", "granian", "bench.baselines:bare_fastapi", "participation"),
        Endpoint("plain ASGI", "granian", "bench.baselines:plain", "participation"),
        Endpoint(DURABLE, "granian", "bench.baselines:durable", "participation"),
    ]
    for checkout in compare_with or []:
        label = checkout_label(checkout)
        wanted.append(
            Endpoint(label, "granian", "backend.app.main:app", "participation", product=True, checkout=checkout)
        )
    if other_server:
        wanted += [
            Endpoint(f"{PRODUCT} (uvicorn)", "uvicorn", "backend.app.main:app", "participation", product=True),
            Endpoint(f"{DURABLE} (uvicorn)", "uvicorn", "bench.baselines:durable", "participation"),
        ]
    return wanted


def server_command(endpoint: Endpoint, port: int, workers: int) -> list[str]:
    """How the server of an endpoint is started: the product exactly as shipped, the baselines alike."""
    if endpoint.server == "granian" and endpoint.target == "backend.app.main:app":
        return api_command(port, workers=workers, log_level="warning")
    where = ["--host", "127.0.0.1", "--port", str(port), "--workers", str(workers), "--log-level", "warning"]
    if endpoint.server == "granian":
        return [sys.executable, "-m", "granian", "--interface", "asgi", "--no-ws", *where, endpoint.target]
    return [sys.executable, "-m", "uvicorn", endpoint.target, *where, "--loop", "asyncio", "--http", "httptools"]


@contextmanager
def all_servers(
    wanted: list[Endpoint], workers: int, env: dict[str, str], baseline_topic: str, jwks: Path | None
) -> Iterator[dict[tuple[str, str, str, bool, str], str]]:
    """Start one server per (server, app) and keep them all running; yield their base URLs.

    Each server gets its own folder of multiprocess metrics, so its /metrics sums its own processes;
    the baselines publish to a topic of their own (their messages are not participation events)."""
    bases: dict[tuple[str, str, str, bool, str], str] = {}
    with ExitStack() as stack:
        for e in wanted:
            if e.server_key not in bases:
                port = free_port()
                metrics = stack.enter_context(tempfile.TemporaryDirectory())
                command = server_command(e, port, workers)
                server_env = {**env, "PROMETHEUS_MULTIPROC_DIR": metrics}
                if not e.product:
                    server_env["KAFKA_TOPIC"] = baseline_topic
                if e.jwt == "HS256":
                    server_env.update(USER_AUTH="jwt", JWT_SECRET=JWT_SECRET)
                elif e.jwt == "ES256":
                    server_env.update(USER_AUTH="jwt", JWT_SECRET="", JWT_JWKS=str(jwks), JWT_ALGORITHMS="ES256")
                if e.unlimited:
                    server_env.update(PARTICIPATION_RATE_LIMIT="0", PARTICIPATION_USER_RATE_LIMIT="0")
                bases[e.server_key] = stack.enter_context(served(command, server_env, port, e.checkout or ROOT))
        yield bases


def es256_keys(folder: Path) -> Path:
    """A new P-256 key pair: the private key to sign the benchmark's tokens, its public half in a JWKS file."""
    private = ec.generate_private_key(ec.SECP256R1())
    pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    (folder / "private.pem").write_bytes(pem)
    public = {**ECKey.import_key(pem).as_dict(private=False), "kid": JWKS_KID, "alg": "ES256", "use": "sig"}
    jwks = folder / "jwks.json"
    jwks.write_text(json.dumps({"keys": [public]}))
    return jwks


def accepted_count(base: str) -> int:
    """The product's 202 answers so far, summed over its processes (multiprocess metrics)."""
    for line in httpx.get(f"{base}/metrics", timeout=10).text.splitlines():
        if line.startswith('fcfs_participation_requests_total{answer="202"}'):
            return int(float(line.rsplit(" ", 1)[1]))
    return 0


def topic_size(settings: Settings, topic: str) -> int:
    return sum(end_offsets(settings, topic).values())


def baseline_topic(settings: Settings) -> str:
    return f"{settings.kafka_topic}.baseline"


def broker_process(settings: Settings) -> list[psutil.Process]:
    """The local Kafka broker (for its CPU seconds), if it runs on this machine."""
    port = int(settings.kafka_bootstrap_servers.split(",")[0].rsplit(":", 1)[1])
    found = listening_process(port)
    return [found] if found is not None else []


def one_round(
    args: argparse.Namespace,
    e: Endpoint,
    base: str,
    settings: Settings,
    campaign_id: int,
    first_user: int,
    profiling: bool,
    tokens: dict[str, list[str]],
) -> dict[str, Any]:
    url = f"{base}/api/campaigns/{campaign_id}/{e.path}"
    api = api_processes(base)
    broker = broker_process(settings)
    topic = settings.kafka_topic if e.product else baseline_topic(settings)
    topic_before, counted_before = topic_size(settings, topic), accepted_count(base) if e.product else 0
    broker_before = cpu_seconds_of(broker)
    profiler = None
    if profiling:
        result: dict[str, Any] = {}
        profiler = threading.Thread(
            target=lambda: result.update(profile(api[-1].pid, max(args.duration - 4, 3))), daemon=True
        )
        profiler.start()
    run = attack(
        url,
        clients=args.clients,
        duration_s=args.duration,
        first_user=first_user,
        watched=api,
        tool=args.load,
        collect_ids=args.check_ids and e.product,
        tokens=tokens[e.jwt] if e.jwt else None,
    )
    run["broker_cpu_s"] = round(cpu_seconds_of(broker) - broker_before, 2)
    if profiler is not None:
        profiler.join()
        run["profile"] = result
    time.sleep(1)  # the last acknowledgements
    run["in_kafka"] = topic_size(settings, topic) - topic_before
    if e.product:
        run["accepted_by_server"] = accepted_count(base) - counted_before
    return run


def check_ids_in_topic(settings: Settings, ids: list[str]) -> int:
    """How many of these request ids are not in the topic."""
    found = {orjson.loads(m.value() or b"{}").get("requestId") for m in read_topic(settings)}
    return sum(1 for rid in ids if rid not in found)


def drain_round(args: argparse.Namespace, settings: Settings, env: dict[str, str], campaign_id: int) -> dict[str, Any]:
    """The product's intake while one worker drains a backlog of `--drain-backlog` requests at full speed.

    A product server of its own on a fresh topic: the backlog is exactly the bulk load, then the
    worker starts and the load begins as soon as it decides."""
    drain = settings.model_copy(update={"kafka_topic": f"{settings.kafka_topic}.drain"})
    ensure_topics(drain)
    port = free_port()
    env = {
        **env,
        "KAFKA_TOPIC": drain.kafka_topic,
        "WORKER_METRICS_PORT": "0",
        "KAFKA_CONSUMER_GROUP": "bench-drain",
        "API_PLANE": "all",  # the bulk load is an operators' route (a .env from scripts/up.sh says `public`)
    }
    try:
        with (
            tempfile.TemporaryDirectory() as metrics,
            served(
                api_command(port, workers=args.workers, log_level="warning"),
                {**env, "PROMETHEUS_MULTIPROC_DIR": metrics},
                port,
            ) as base,
        ):
            admin = {"Authorization": f"Bearer {env['ADMIN_TOKEN']}"}
            with httpx.Client(base_url=base, headers=admin, timeout=120) as client:
                left, user = args.drain_backlog, 500_000_000
                while left:
                    count = min(left, 100_000)
                    body = {"campaignId": campaign_id, "count": count, "userIdStart": user}
                    client.post("/api/admin/test/participate-bulk", json=body).raise_for_status()
                    left, user = left - count, user + count
            worker = subprocess.Popen([sys.executable, "-m", "worker"], env={**os.environ, **env})
            try:
                with httpx.Client(base_url=base, timeout=30) as client:
                    status = f"/api/campaigns/{campaign_id}/status"

                    def decided() -> int:
                        return int(client.get(status).json()["data"]["totalParticipation"])

                    before = decided()
                    deadline = time.monotonic() + 60
                    while decided() == before and time.monotonic() < deadline:
                        time.sleep(0.2)  # until the worker is deciding
                    start, t0 = decided(), time.monotonic()
                    run = attack(
                        f"{base}/api/campaigns/{campaign_id}/participation",
                        clients=args.clients,
                        duration_s=args.duration,
                        first_user=900_000_000,
                        watched=api_processes(base),
                        tool=args.load,
                    )
                    run["worker_decided_per_s"] = round((decided() - start) / (time.monotonic() - t0))
            finally:
                worker.terminate()
                worker.wait(60)
    finally:
        delete_topics(drain, [drain.kafka_topic, drain.dlq_topic])
    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--duration", type=int, default=15, help="seconds of each run")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=3, help="seconds of load on each server before the rounds")
    parser.add_argument("--workers", type=int, default=2, help="processes of every server")
    parser.add_argument("--load", choices=("wrk", "vegeta"), default="wrk")
    parser.add_argument("--other-server", action="store_true", help="also the product and the ceiling on uvicorn")
    parser.add_argument("--only", nargs="*", help="only these endpoints (by name)")
    parser.add_argument(
        "--compare-with",
        nargs="*",
        type=Path,
        default=[],
        help="also the product of these checkouts (e.g. a `git worktree` of a former commit), in the same rounds",
    )
    parser.add_argument("--check-ids", action="store_true", help="look every 202's request id up in the topic")
    parser.add_argument("--drain-backlog", type=int, default=0, help="intake while a worker drains N requests")
    parser.add_argument("--profile", action="store_true", help="py-spy an API process in the first product round")
    parser.add_argument("--partitions", type=int, default=1)
    parser.add_argument("--database", default="fcfs_bench_ingest")
    parser.add_argument("--out", default="ingest", help="file name (without suffix) of the results")
    parser.add_argument("--out-dir", type=Path, default=EXPERIMENTS)
    args = parser.parse_args()
    if args.check_ids and args.load != "vegeta":
        parser.error("--check-ids needs --load vegeta (it records every answer)")

    suffix = uuid.uuid4().hex[:8]
    settings = get_settings().model_copy(
        update={"kafka_topic": f"bench-ingest-{suffix}", "kafka_topic_partitions": args.partitions}
    )
    database_url = fresh_database(args.database)
    engine = make_engine(database_url, pool_size=1)
    wanted = [
        e
        for e in endpoints(args.other_server, [c.resolve() for c in args.compare_with])
        if not args.only or e.name in args.only or e.checkout is not None
    ]
    signing = settings.model_copy(update={"jwt_secret": SecretStr(JWT_SECRET)})
    keys = Path(tempfile.mkdtemp(prefix="bench-ingest-keys-"))
    jwks = es256_keys(keys)
    tokens = {
        alg: [mint(signing, user, ttl_s=24 * 3600, **es256) for user in range(1, TOKENS + 1)]
        for alg, es256 in (
            ("HS256", {}),
            ("ES256", {"private_key": str(keys / "private.pem"), "algorithm": "ES256", "kid": JWKS_KID}),
        )
        if any(e.jwt == alg for e in wanted)
    }
    with engine.begin() as conn:
        campaign_id = conn.execute(
            insert(campaign).values(name="ingest benchmark", total_stock=100, current_stock=100, created_at=utcnow())
        ).inserted_primary_key[0]  # type: ignore[index]
    engine.dispose()
    ensure_topics(settings)
    ensure_topics(settings.model_copy(update={"kafka_topic": baseline_topic(settings)}))
    runs: dict[str, list[dict[str, Any]]] = {e.name: [] for e in wanted}
    drain: dict[str, Any] | None = None
    token = uuid.uuid4().hex
    env = {
        "DATABASE_URL": database_url,
        "KAFKA_TOPIC": settings.kafka_topic,
        "KAFKA_TOPIC_PARTITIONS": str(args.partitions),
        "BENCH_ENDPOINTS": "true",
        "ADMIN_TOKEN": token,
    }
    try:
        with all_servers(wanted, args.workers, env, baseline_topic(settings), jwks) as bases:
            user = 1
            for e in wanted if args.warmup else []:  # every server warmed up alike, not counted
                base = bases[e.server_key]
                attack(
                    f"{base}/api/campaigns/{campaign_id}/{e.path}",
                    clients=args.clients,
                    duration_s=args.warmup,
                    first_user=user,
                    watched=api_processes(base),
                    tool=args.load,
                    tokens=tokens[e.jwt] if e.jwt else None,
                )
                user += 10_000_000
            time.sleep(2 if args.warmup else 0)  # the warm-up's last answers counted and delivered before round 1
            for round_ in range(args.rounds):
                shift = round_ % len(wanted)  # each round starts with another endpoint: none always goes first
                for e in wanted[shift:] + wanted[:shift]:
                    profiling = args.profile and round_ == 0 and e.name in PROFILED
                    run = one_round(args, e, bases[e.server_key], settings, campaign_id, user, profiling, tokens)
                    user += 10_000_000
                    if run.get("accepted_ids"):
                        run["accepted_ids_not_in_topic"] = check_ids_in_topic(settings, run["accepted_ids"])
                        run["accepted_ids"] = len(run["accepted_ids"])
                    print(f"round {round_ + 1} {e.name}: {_short(run)}", flush=True)
                    runs[e.name].append(run)
                    time.sleep(1)
        if args.drain_backlog:
            drain = drain_round(args, settings, env, campaign_id)
            print(f"while draining: {_short(drain)}", flush=True)
    finally:
        shutil.rmtree(keys, ignore_errors=True)
        baseline = baseline_topic(settings)
        delete_topics(settings, [settings.kafka_topic, settings.dlq_topic, baseline, f"{baseline}.dlq"])

    result = summarise(args, runs, drain)
    save_results(args.out_dir, args.out, result, report, chart)
    for name, stem in PROFILED.items():
        profile_of = next((r["profile"] for r in runs.get(name, []) if "profile" in r), None)
        if profile_of is not None:
            (args.out_dir / f"{stem}.md").write_text("\n".join(profile_report(profile_of, name)))
    m = result["median"]
    print(
        "; ".join(f"{name} {m[name]['requests_per_s']:,.0f} req/s" for name in m)
        + f"; errors {result['errors']}; accepted but not in Kafka {result['accepted_not_in_kafka']}"
    )


def _short(run: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in run.items() if k != "profile"}


def summarise(
    args: argparse.Namespace, runs: dict[str, list[dict[str, Any]]], drain: dict[str, Any] | None
) -> dict[str, Any]:
    median = {name: _median(rs) for name, rs in runs.items()}
    product_runs = [r for name, rs in runs.items() if name.startswith(PRODUCT) for r in rs]
    ceiling = median.get(DURABLE, {}).get("requests_per_s")
    return {
        "experiment": "ingest: the participation endpoint next to its baselines",
        **run_header(args),
        "load_generator": {
            "tool": args.load,
            "mode": f"closed loop, {args.clients} connections, keep-alive, one new user per request",
        },
        "median": median,
        "product_over_durable": round(median[PRODUCT]["requests_per_s"] / ceiling, 2)
        if ceiling and PRODUCT in median
        else None,
        "errors": sum(r["errors"] for rs in runs.values() for r in rs),
        "accepted_not_in_kafka": sum(r["accepted_by_server"] - r["in_kafka"] for r in product_runs),
        "accepted_ids_not_in_topic": sum(r.get("accepted_ids_not_in_topic", 0) for r in product_runs),
        "noop_in_kafka": sum(r["in_kafka"] for r in runs.get("product no-I/O", [])),
        "while_draining": drain,
        "runs": {name: [_short(r) for r in rs] for name, rs in runs.items()},
    }


def _median(runs: list[dict[str, Any]]) -> dict[str, Any]:
    def per_1000(key: str) -> float:
        return round(float(statistics.median(r[key] / max(r["requests"], 1) * 1000 for r in runs)), 4)

    return {
        "requests_per_s": statistics.median(r["requests_per_s"] for r in runs),
        "latency_ms": {k: statistics.median(r["latency_ms"][k] for r in runs) for k in runs[0]["latency_ms"]},
        "api_cpu_s_per_1000": per_1000("api_cpu_s"),
        "broker_cpu_s_per_1000": per_1000("broker_cpu_s"),
        "loadgen_cpu_s": statistics.median(r["loadgen_cpu_s"] for r in runs),
        "requests": statistics.median(r["requests"] for r in runs),
        "errors": sum(r["errors"] for r in runs),
    }


def chart(plt: Any, r: dict[str, Any]) -> Any:
    """Requests/s of every endpoint, and p50 / p99 latency."""
    m = r["median"]
    names = list(m)
    colors = ["#1f77b4" if n.startswith(PRODUCT) else "#7f7f7f" for n in names]
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.6), dpi=120)
    bars = left.barh(names, [m[n]["requests_per_s"] for n in names], color=colors)
    left.bar_label(bars, labels=[f"{m[n]['requests_per_s']:,.0f}" for n in names], padding=3)
    left.invert_yaxis()
    left.set_xlabel("requests per second")
    left.set_title(f"{r['settings']['clients']:,} concurrent clients, {r['machine']['cpus']} cores")
    for i, stat in enumerate(("p50", "p99")):
        right.barh(
            [y + (i - 0.5) * 0.4 for y in range(len(names))],
            [m[n]["latency_ms"][stat] for n in names],
            0.4,
            label=stat,
            color=["#aec7e8", "#1f77b4"][i],
        )
    right.set_yticks(range(len(names)), names)
    right.invert_yaxis()
    right.set_xlabel("latency, ms")
    right.legend()
    right.set_title("Latency")
    return fig


def report(r: dict[str, Any]) -> list[str]:
    """Every endpoint against the ceiling, the durability check and the intake while draining, in Markdown."""
    s, m = r["settings"], r["median"]
    title = "Ingest — the participation endpoint next to its baselines"
    lines = [
        *heading(
            title,
            "bench.ingest",
            r,
            ["clients", "duration", "rounds", "workers", "load"],
            ["other_server", "only", "compare_with", "drain_backlog", "profile", "out"],
        ),
        f"Load: {r['load_generator']['tool']}, {r['load_generator']['mode']}, on the same machine as every server, "
        "the Kafka broker and the database.",
        "",
        f"Every server runs {s['workers']} processes; rounds alternate between the endpoints, {s['duration']} s "
        f"each, each round starting with another endpoint; medians of {s['rounds']} rounds, with their min–max. "
        "Ceiling: `durable ASGI` — a plain ASGI callable that produces each request (`acks=all`, idempotent) and "
        "answers 202 after the delivery report. Conditions alike for every server: the same CPU priority (nice 0), "
        "**no worker running during the rounds** (the door alone; the row after the table measures it beside a "
        "worker), and the product as shipped — limits on (set out of reach of the one load generator's address, "
        "still checked), the lag sampler on, metrics on.",
        "",
        "| endpoint | server | requests/s | min–max | vs ceiling | p50 | p99 | errors | API CPU s / 1,000 "
        "| broker CPU s / 1,000 |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    ceiling = m.get(DURABLE, {}).get("requests_per_s")
    for name, x in m.items():
        lat = x["latency_ms"]
        server = "uvicorn" if "uvicorn" in name else "granian"
        ratio = f"{x['requests_per_s'] / ceiling:.2f}" if ceiling else "—"
        bold = "**" if name == PRODUCT else ""
        lines.append(
            f"| {name} | {server} | {bold}{x['requests_per_s']:,.0f}{bold} "
            f"| {spread([run['requests_per_s'] for run in r['runs'][name]])} | {ratio} | {lat['p50']} ms "
            f"| {lat['p99']} ms | {x['errors']} | {x['api_cpu_s_per_1000']:.3f} | {x['broker_cpu_s_per_1000']:.3f} |"
        )
    lines += [
        "",
        f"Errors: {r['errors']}. Every 202 of the product is in Kafka: in every round the topic grew by exactly the "
        f"number of 202s the product counted (accepted but missing: {r['accepted_not_in_kafka']}"
        + (
            f"; request ids of 202s not found in the topic: {r['accepted_ids_not_in_topic']}"
            if s.get("check_ids")
            else ""
        )
        + ").",
        "",
    ]
    drain = r.get("while_draining")
    if drain:
        lines += [
            f"While one worker drained a backlog of {s['drain_backlog']:,} requests: intake "
            f"**{drain['requests_per_s']:,.0f} requests/s** (p99 {drain['latency_ms']['p99']} ms, errors "
            f"{drain['errors']}), the worker deciding {drain['worker_decided_per_s']:,} requests/s meanwhile.",
            "",
        ]
    lines += [
        "With C clients each waiting for its answer, latency ≈ C ÷ throughput: on 2 cores shared by the server, the "
        "broker, the database and the load generator, read the ratios to the baselines.",
        "",
    ]
    return lines


def profile_report(p: dict[str, Any], name: str = PRODUCT) -> list[str]:
    return [
        f"# Ingest profile — one API process of `{name}` under the participation load",
        "",
        f"py-spy `--gil`, {p['seconds']} s, {p['samples']:,} samples: only the thread holding the GIL is sampled, so "
        "the shares are of the Python CPU time of the process.",
        "",
        "## Own time (where the process actually was)",
        "",
        "| share | function |",
        "|---|---|",
        *[f"| {share:.1%} | `{f}` |" for f, share in p["own"]],
        "",
        "## Total time (the function or anything it called)",
        "",
        "| share | function |",
        "|---|---|",
        *[f"| {share:.1%} | `{f}` |" for f, share in p["total"]],
        "",
    ]


if __name__ == "__main__":
    main()
