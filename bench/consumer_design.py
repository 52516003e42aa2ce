"""Consumer design: one message per transaction (the original's consumer) vs the batched worker.

Each run starts clean: a fresh one-partition topic holding a backlog of N participation requests
over C campaigns (key = campaign id, users drawn so that some click twice), and two fresh databases
with the same campaigns. Then, in this order and in this process:

1. the database's write ceiling, now, for N rows in multi-row INSERTs of `batch` rows per commit:
   (a) the hardware notes' method (PyMySQL `executemany` into their narrower reference table),
   (b) the same into a scratch copy of `participation_history` (all its indexes), and (c) the
   server alone: the same statements rendered before the clock starts ((a) and (b) include the
   driver's escaping of every value in Python, which the worker does not pay);
2. the batched worker (`WORKER_BATCH_SIZE=batch`) drains the backlog into the first database;
3. the same worker with batch size 1 — one message per transaction, as the original consumer —
   drains the same backlog into the second database.

Both must reach exactly the decisions computed from the log (each campaign's winners are its first
`stock` distinct users in log order), with counters equal to the history. Reports messages/s (first
message received to last commit), CPU per 1,000 messages of the worker and of the database server,
and the batched worker as a fraction of the ceiling; medians over the runs go to
docs/experiments/consumer-design.{md,json,png}.

    python -m bench.consumer_design [--messages 200000] [--campaigns 10] [--stock 1000] [--runs 3]
"""

from __future__ import annotations

import argparse
import logging
import random
import resource
import statistics
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psutil
from confluent_kafka import Producer
from sqlalchemy import Engine, insert, select, text

from bench.common import EXPERIMENTS, database_process, fresh_database, heading, run_header, save_results, spread
from fcfs.db import make_engine, placeholders, utcnow
from fcfs.decision import decide_batch
from fcfs.events import ParticipationEvent, signed_event
from fcfs.kafka import delete_topics, ensure_topics, producer_config
from fcfs.ledger import HISTORY_COLUMNS
from fcfs.request_ids import RequestIdSigner
from fcfs.schema import campaign, participation_history
from fcfs.settings import Settings, get_settings
from worker.worker import ParticipationWorker

# The reference probe of the hardware notes: a narrower history-like table with two secondary indexes.
REFERENCE_DDL = """CREATE TABLE ceiling_reference (
  id BIGINT AUTO_INCREMENT PRIMARY KEY, request_id CHAR(36) NOT NULL UNIQUE,
  campaign_id BIGINT NOT NULL, user_id BIGINT NOT NULL, status TINYINT NOT NULL,
  kafka_partition INT, kafka_offset BIGINT, created_at DATETIME(6) NOT NULL,
  KEY k_campaign_time (campaign_id, created_at), KEY k_campaign_user (campaign_id, user_id)) ENGINE=InnoDB"""
REFERENCE_INSERT = (
    "INSERT INTO ceiling_reference (request_id, campaign_id, user_id, status, kafka_partition, kafka_offset, "
    "created_at) VALUES (%s, %s, %s, %s, %s, %s, %s)"
)
DESIGNS = ("one message per transaction", "batched")


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


@contextmanager
def cpu_meter(db: psutil.Process | None) -> Iterator[dict[str, float]]:
    """Measure this process's and the database server's CPU seconds over the block."""
    out: dict[str, float] = {}

    def db_cpu() -> float:
        if db is None:
            return float("nan")
        times = db.cpu_times()
        return float(times.user + times.system)

    own0, db0, t0 = cpu_seconds(), db_cpu(), time.monotonic()
    yield out
    out["wall_s"] = time.monotonic() - t0
    out["own_cpu_s"] = cpu_seconds() - own0
    out["db_cpu_s"] = db_cpu() - db0


def backlog(messages: int, campaigns: int, seed: int) -> list[ParticipationEvent]:
    """N requests over campaigns 1..C in arrival order, signed as the API signs; about a third of the users
    click twice."""
    signer = RequestIdSigner(get_settings().request_id_secret.get_secret_value())
    rng = random.Random(seed)
    users = max(messages * 2 // 3, 1)
    events = []
    for _ in range(messages):
        cid, user = rng.randint(1, campaigns), rng.randint(1, users)
        events.append(signed_event(signer, cid, user))
    return events


def expected_outcomes(events: list[ParticipationEvent], stock: int) -> dict[str, str]:
    """Each request's decision, computed from the log: the FCFS rule applied per campaign in order."""
    per_campaign: dict[int, list[ParticipationEvent]] = defaultdict(list)
    for e in events:
        per_campaign[e.campaign_id].append(e)
    out: dict[str, str] = {}
    for seq in per_campaign.values():
        tally = decide_batch(stock, set(), [e.user_id for e in seq])
        out.update((e.request_id, o.value) for e, o in zip(seq, tally.outcomes, strict=True))
    return out


def publish(settings: Settings, events: list[ParticipationEvent]) -> None:
    producer = Producer(producer_config(settings, **{"linger.ms": 20, "batch.num.messages": 10000}))
    for event in events:
        while True:
            try:
                producer.produce(settings.kafka_topic, event.to_json(), event.key())
                break
            except BufferError:
                producer.poll(0.05)
    assert producer.flush(60) == 0, "the backlog was not fully published"


def prepare_database(name: str, campaigns: int, stock: int) -> Engine:
    engine = make_engine(fresh_database(name), isolation_level="READ COMMITTED", pool_size=2)
    with engine.begin() as conn:
        for i in range(campaigns):
            conn.execute(
                insert(campaign).values(
                    name=f"bench campaign {i + 1}", total_stock=stock, current_stock=stock, created_at=utcnow()
                )
            )
    return engine


def measure_ceiling(
    engine: Engine, events: list[ParticipationEvent], outcomes: dict[str, str], batch: int
) -> dict[str, float]:
    """Rows/s the database takes, measured three ways (see the module's docstring), plus one row per commit."""
    now = utcnow().strftime("%Y-%m-%d %H:%M:%S.%f")
    history_rows = [
        (e.request_id, e.campaign_id, e.user_id, outcomes[e.request_id], "KAFKA", 0, i, now, now)
        for i, e in enumerate(events)
    ]
    reference_rows = [(e.request_id[:36], e.campaign_id, e.user_id, 1, 0, i, now) for i, e in enumerate(events)]
    history_insert = f"INSERT INTO ceiling_history ({HISTORY_COLUMNS}) VALUES ({placeholders(9)})"
    raw = engine.raw_connection()
    cur = raw.cursor()

    def fresh(table: str, ddl: str) -> None:
        cur.execute(f"DROP TABLE IF EXISTS {table}")
        cur.execute(ddl)
        raw.commit()

    def timed(run: Callable[[], None], rows: int) -> float:
        t0 = time.perf_counter()
        run()
        return rows / (time.perf_counter() - t0)

    def executemany(sql: str, rows: list[tuple[Any, ...]]) -> Callable[[], None]:
        def run() -> None:
            for i in range(0, len(rows), batch):
                cur.executemany(sql, rows[i : i + batch])  # PyMySQL folds it into one multi-row INSERT
                raw.commit()

        return run

    try:
        results = {}
        # 1. the hardware notes' method: PyMySQL executemany into the narrower reference table
        fresh("ceiling_reference", REFERENCE_DDL)
        results["reference"] = timed(executemany(REFERENCE_INSERT, reference_rows), len(reference_rows))
        cur.execute("DROP TABLE ceiling_reference")
        # 2. the same method into a copy of participation_history (all its indexes)
        like = "CREATE TABLE ceiling_history LIKE participation_history"
        fresh("ceiling_history", like)
        results["history_shape"] = timed(executemany(history_insert, history_rows), len(history_rows))
        # 3. the server alone: the same statements rendered before the clock starts
        fresh("ceiling_history", like)
        values = "(" + ", ".join(["%s"] * 9) + ")"
        head = history_insert[: history_insert.index("VALUES") + len("VALUES ")]
        statements = [
            head + ",".join(cur.mogrify(values, row) for row in history_rows[i : i + batch])
            for i in range(0, len(history_rows), batch)
        ]

        def prerendered() -> None:
            for sql in statements:
                cur.execute(sql)
                raw.commit()

        results["history_shape_server"] = timed(prerendered, len(history_rows))
        # the bound of any one-message-per-transaction design: one row, one commit
        fresh("ceiling_history", like)
        single = history_rows[: min(len(history_rows), 3000)]

        def one_per_commit() -> None:
            for row in single:
                cur.execute(history_insert, row)
                raw.commit()

        results["history_shape_one_commit_per_row"] = timed(one_per_commit, len(single))
        cur.execute("DROP TABLE ceiling_history")
        raw.commit()
        return results
    finally:
        raw.close()


def drain(
    settings: Settings,
    engine: Engine,
    group: str,
    batch_size: int,
    db: psutil.Process | None,
    limit: int | None = None,
) -> dict[str, Any]:
    """Run the worker in drain mode (stopping once `limit` messages are decided, if given) and measure it."""
    worker_settings = settings.model_copy(update={"worker_batch_size": batch_size})
    worker = ParticipationWorker(worker_settings, engine, group=group, drain=True)
    done = threading.Event()

    def stop_at_limit() -> None:
        while limit is not None and not done.wait(0.005):
            if worker.stats.decided >= limit:
                worker.stop()
                return

    watcher = threading.Thread(target=stop_at_limit, daemon=True)
    watcher.start()
    with cpu_meter(db) as cpu:
        stats = worker.run()
    done.set()
    watcher.join()
    return {
        "decided": stats.decided,
        "messages_per_s": round(stats.drain_rate()),
        "wall_s_with_group_join": round(cpu["wall_s"], 2),
        "worker_cpu_s_per_1000": round(cpu["own_cpu_s"] / max(stats.decided, 1) * 1000, 4),
        "db_cpu_s_per_1000": round(cpu["db_cpu_s"] / max(stats.decided, 1) * 1000, 4),
        "batches": stats.batches,
    }


def check(engine: Engine, expected: dict[str, str], complete: bool) -> int:
    """Decisions that differ from the expected ones, plus campaigns whose counters disagree with the history.

    `complete`: every expected request must have been decided (otherwise only those decided are compared:
    a design stopped early decided a prefix of the log).
    """
    with engine.connect() as conn:
        got = {
            rid: str(getattr(s, "value", s))
            for rid, s in conn.execute(select(participation_history.c.request_id, participation_history.c.status))
        }
        counters = conn.execute(
            text(
                "SELECT c.id, c.success_count + c.fail_count + c.duplicate_count AS counted, "
                "(SELECT COUNT(*) FROM participation_history h WHERE h.campaign_id = c.id) AS rows_ FROM campaign c"
            )
        ).all()
    wrong = sum(1 for rid, status in got.items() if expected.get(rid) != status)
    if complete:
        wrong += len(set(expected) - set(got))
    wrong += sum(1 for row in counters if row.counted != row.rows_)
    return wrong


def one_run(args: argparse.Namespace, seed: int) -> dict[str, Any]:
    suffix = uuid.uuid4().hex[:8]
    settings = get_settings().model_copy(
        update={"kafka_topic": f"bench-design-{suffix}", "kafka_topic_partitions": 1, "worker_metrics_port": 0}
    )
    events = backlog(args.messages, args.campaigns, seed)
    expected = expected_outcomes(events, args.stock)
    ensure_topics(settings)
    publish(settings, events)
    engines = {
        design: prepare_database(f"{args.database}_{i}", args.campaigns, args.stock) for i, design in enumerate(DESIGNS)
    }
    db = database_process(str(engines["batched"].url))
    try:
        ceiling = measure_ceiling(engines["batched"], events, expected, args.batch_size)
        designs = {
            "batched": drain(settings, engines["batched"], f"bench-batched-{suffix}", args.batch_size, db),
            DESIGNS[0]: drain(
                settings, engines[DESIGNS[0]], f"bench-single-{suffix}", 1, db, limit=args.single_messages
            ),
        }
        wrong = {design: check(engines[design], expected, design == "batched") for design in DESIGNS}
    finally:
        for engine in engines.values():
            engine.dispose()
        delete_topics(settings, [settings.kafka_topic, settings.dlq_topic])
    assert designs["batched"]["decided"] == args.messages, f"decided {designs['batched']['decided']} of {args.messages}"
    assert designs[DESIGNS[0]]["decided"] >= min(args.single_messages, args.messages)
    for design, result in designs.items():
        result["wrong_decisions"] = wrong[design]
    batched = designs["batched"]["messages_per_s"]
    return {
        "designs": designs,
        "ceiling_rows_per_s": {k: round(v) for k, v in ceiling.items()},
        "batched_over_single": round(batched / max(designs[DESIGNS[0]]["messages_per_s"], 1), 1),
        "batched_share_of_ceiling": {k: round(batched / v, 2) for k, v in ceiling.items()},
        "winners_expected": sum(1 for s in expected.values() if s == "SUCCESS"),
    }


def median_of(runs: list[dict[str, Any]], *path: str) -> float:
    """The median over the runs of the figure at `path` (keys into each run's nested dicts)."""

    def pick(run: dict[str, Any]) -> float:
        value: Any = run
        for key in path:
            value = value[key]
        return float(value)

    return float(statistics.median(pick(r) for r in runs))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=200_000)
    parser.add_argument("--campaigns", type=int, default=10)
    parser.add_argument("--stock", type=int, default=1000, help="stock of each campaign")
    parser.add_argument("--batch-size", type=int, default=get_settings().worker_batch_size)
    parser.add_argument(
        "--single-messages",
        type=int,
        default=20_000,
        help="the one-message-per-transaction consumer stops after deciding this many (the first of the same log)",
    )
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--database", default="fcfs_bench_design", help="prefix of the two scratch databases")
    parser.add_argument("--out-dir", type=Path, default=EXPERIMENTS)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    runs = []
    for i in range(args.runs):
        run = one_run(args, seed=i + 1)
        print(f"run {i + 1}: {run}", flush=True)
        runs.append(run)
    fields = ("messages_per_s", "worker_cpu_s_per_1000", "db_cpu_s_per_1000", "wall_s_with_group_join")
    median: dict[str, Any] = {design: {f: median_of(runs, "designs", design, f) for f in fields} for design in DESIGNS}
    median["ceiling_rows_per_s"] = {k: median_of(runs, "ceiling_rows_per_s", k) for k in runs[0]["ceiling_rows_per_s"]}
    median["batched_over_single"] = median_of(runs, "batched_over_single")
    median["batched_share_of_ceiling"] = {
        k: median_of(runs, "batched_share_of_ceiling", k) for k in runs[0]["batched_share_of_ceiling"]
    }
    result = {
        "experiment": "consumer design: one message per transaction vs batched, one partition",
        **run_header(args),
        "wrong_decisions": sum(r["designs"][d]["wrong_decisions"] for r in runs for d in DESIGNS),
        "median": median,
        "runs": runs,
    }
    save_results(args.out_dir, "consumer-design", result, report, chart)
    print(
        f"batched {median['batched']['messages_per_s']:,.0f} msg/s, one-per-transaction "
        f"{median[DESIGNS[0]]['messages_per_s']:,.0f} msg/s ({median['batched_over_single']}x); "
        f"wrong decisions: {result['wrong_decisions']}"
    )


ORIGINAL_CLAIM_PER_S = 833  # the original design document's one-partition figure


def report(r: dict[str, Any]) -> list[str]:
    """The result file's Markdown lines (the chart is appended by save_results)."""
    s, m = r["settings"], r["median"]
    lines = [
        *heading(
            "Consumer design — one message per transaction vs batched",
            "bench.consumer_design",
            r,
            ["messages", "campaigns", "stock", "batch_size", "runs"],
        ),
        "",
        f"A backlog of {s['messages']:,} requests over {s['campaigns']} campaigns (stock {s['stock']:,} each) on "
        "**one partition**, drained by the same worker code with two batch sizes, each into its own fresh "
        "database; the write ceiling measured in the same run. Medians of "
        f"{s['runs']} runs (messages/s from the first message received to the last commit; history rows, "
        "counters and offsets committed). The one-message-per-transaction consumer decides the first "
        f"{s['single_messages']:,} messages of the same log (its rate does not depend on the backlog's length):",
        "",
        "| design | messages/s | min–max | worker CPU s / 1,000 msgs | database CPU s / 1,000 msgs "
        "| wall s (with group join) |",
        "|---|---|---|---|---|---|",
    ]
    for design in reversed(DESIGNS):
        d = m[design]
        label = f"batched ({s['batch_size']:,} per transaction)" if design == "batched" else design
        lines.append(
            f"| {label} | **{d['messages_per_s']:,.0f}** "
            f"| {spread([run['designs'][design]['messages_per_s'] for run in r['runs']])} "
            f"| {d['worker_cpu_s_per_1000']:.3f} "
            f"| {d['db_cpu_s_per_1000']:.3f} | {d['wall_s_with_group_join']:.1f} |"
        )
    c, share = m["ceiling_rows_per_s"], m["batched_share_of_ceiling"]
    lines += [
        "",
        f"**Batched is {m['batched_over_single']}x the one-message-per-transaction consumer** — this worker with "
        "batches of one, checking signatures and storing offsets in every transaction as the batched one does. The "
        f"original design document claims {ORIGINAL_CLAIM_PER_S} messages/s for its consumer of one message per "
        f"transaction (its own figure, not measured here): batched is "
        f"{m['batched']['messages_per_s'] / ORIGINAL_CLAIM_PER_S:.0f}x that claim.",
        "",
        f"The database's write ceiling, measured in the same run ({s['messages']:,} rows, multi-row INSERTs of "
        f"{s['batch_size']:,} rows per commit), and the batched worker as a share of it — the worker also locks the "
        "campaigns, looks up prior participants, updates the counters and stores the offsets in each transaction:",
        "",
        "| ceiling | rows/s | batched worker |",
        "|---|---|---|",
        f"| hardware notes' method: PyMySQL `executemany`, narrower reference table | {c['reference']:,.0f} "
        f"| {share['reference']:.0%} |",
        f"| the same method, copy of `participation_history` (all its indexes) | {c['history_shape']:,.0f} "
        f"| {share['history_shape']:.0%} |",
        f"| the server alone: those statements rendered before the clock starts | {c['history_shape_server']:,.0f} "
        f"| {share['history_shape_server']:.0%} |",
        f"| one row per commit (the bound of any one-message-per-transaction design) "
        f"| {c['history_shape_one_commit_per_row']:,.0f} | {share['history_shape_one_commit_per_row']:.1f}x |",
        "",
        "The first two include the driver's escaping of every value in Python, which the worker avoids by writing "
        "its VALUES list itself.",
        "",
        f"Every decision of both designs matched the one computed from the log (each campaign's winners are its "
        f"first {s['stock']:,} distinct users in log order): **{r['wrong_decisions']} wrong decisions**.",
        "",
    ]
    return lines


def chart(plt: Any, r: dict[str, Any]) -> Any:
    """The result's chart, as a matplotlib figure."""
    m = r["median"]
    labels = [
        "one message\nper transaction",
        "batched\nworker",
        "ceiling: server\nalone",
        "ceiling: notes'\nmethod",
    ]
    values = [
        m[DESIGNS[0]]["messages_per_s"],
        m["batched"]["messages_per_s"],
        m["ceiling_rows_per_s"]["history_shape_server"],
        m["ceiling_rows_per_s"]["reference"],
    ]
    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=120)
    bars = ax.bar(labels, values, color=["#d62728", "#1f77b4", "#7f7f7f", "#c7c7c7"])
    ax.bar_label(bars, labels=[f"{v:,.0f}" for v in values], fontsize=8)
    ax.set_ylabel("messages (rows) per second")
    ax.set_title(f"One partition, {r['settings']['messages']:,} messages, {r['settings']['campaigns']} campaigns")
    return fig


if __name__ == "__main__":
    main()
