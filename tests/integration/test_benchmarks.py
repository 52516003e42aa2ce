"""Smoke-sized runs of the benchmark commands, so they keep working (figures come from full runs)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from bench.partitions import requests as bench_requests
from fcfs.settings import Settings
from tests.support import ROOT, settings_env
from tests.support.processes import Processes


def run_bench(settings: Settings, module: str, args: list[str], timeout_s: int) -> None:
    """Run a benchmark command as a user would, against the test stack; it must succeed."""
    result = subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=ROOT,
        env=settings_env(settings),
        capture_output=True,
        text=True,
        timeout=timeout_s,
    )
    assert result.returncode == 0, result.stderr[-3000:]


def test_consumer_design_experiment_runs_and_agrees(settings: Settings, tmp_path: Path) -> None:
    run_bench(
        settings,
        "bench.consumer_design",
        [
            "--messages",
            "1500",
            "--campaigns",
            "3",
            "--stock",
            "100",
            "--batch-size",
            "400",
            "--single-messages",
            "150",
            "--runs",
            "1",
            "--database",
            "fcfs_test_design",
            "--out-dir",
            str(tmp_path),
        ],
        timeout_s=300,
    )
    figures = json.loads((tmp_path / "consumer-design.json").read_text())
    run = figures["runs"][0]
    assert figures["wrong_decisions"] == 0
    assert run["designs"]["batched"]["decided"] == 1500 and run["designs"]["batched"]["batches"] >= 4
    assert 150 <= run["designs"]["one message per transaction"]["decided"] < 1500
    assert run["winners_expected"] == 300
    assert set(run["ceiling_rows_per_s"]) == {
        "reference",
        "history_shape",
        "history_shape_server",
        "history_shape_one_commit_per_row",
    }
    assert (tmp_path / "consumer-design.png").read_bytes()[:4] == b"\x89PNG"
    assert "0 wrong decisions" in (tmp_path / "consumer-design.md").read_text()


def test_raw_vs_batch_experiment_runs_and_agrees(settings: Settings, tmp_path: Path) -> None:
    run_bench(
        settings,
        "bench.raw_vs_batch",
        [
            "--rows",
            "3000",
            "--days",
            "2",
            "--campaigns-per-day",
            "2",
            "--repeats",
            "2",
            "--database",
            "fcfs_test_experiment",
            "--out-dir",
            str(tmp_path),
        ],
        timeout_s=300,
    )
    figures = json.loads((tmp_path / "raw-vs-batch.json").read_text())
    assert figures["mismatches"] == 0
    assert figures["history_rows"] > 2000
    assert set(figures["figures"]) == {"daily-raw", "daily-batched", "period-raw", "period-batched"}
    assert (tmp_path / "raw-vs-batch.png").read_bytes()[:4] == b"\x89PNG"
    assert "faster" in (tmp_path / "raw-vs-batch.md").read_text()


def test_dashboard_poll_benchmark_runs(settings: Settings, tmp_path: Path) -> None:
    run_bench(
        settings,
        "bench.dashboard_poll",
        ["--rows", "5000", "--polls", "3", "--database", "fcfs_test_dashboard", "--out-dir", str(tmp_path)],
        timeout_s=300,
    )
    figures = json.loads((tmp_path / "dashboard-poll.json").read_text())
    assert figures["history_rows"] == 5000 and figures["polls"] == 3
    assert figures["poll_ms"]["p50"] > 0


def test_draw_benchmark_runs(settings: Settings, tmp_path: Path) -> None:
    args = ["--held", "1000", "5000", "--repeat", "1", "--database", "fcfs_test_draw", "--out-dir", str(tmp_path)]
    run_bench(settings, "bench.draw", args, timeout_s=300)
    rows = json.loads((tmp_path / "draw.json").read_text())["result"]
    assert [(r["held"], r["stock"]) for r in rows] == [(1000, 100), (5000, 500)]
    assert all(r["locked_s"] > 0 and r["verify_s"] > 0 for r in rows)
    assert "| 5,000 | 500 |" in (tmp_path / "draw.md").read_text()


def test_limiter_capacity_benchmark_runs(settings: Settings, tmp_path: Path) -> None:
    run_bench(settings, "bench.limiter_capacity", ["--keys", "1000", "1000000", "--out-dir", str(tmp_path)], 300)
    rows = json.loads((tmp_path / "limiter-capacity.json").read_text())["rows"]
    assert [r["keys"] for r in rows] == [1000, 1_000_000]
    assert rows[0]["shared_overflow"] == 0 < rows[1]["shared_overflow"] < 1_000_000  # past capacity: some share
    assert all(r["take_us"] > 0 for r in rows)


def test_ingest_experiment_runs_and_every_202_is_in_kafka(settings: Settings, tmp_path: Path) -> None:
    """vegeta records every answer: each 202's request id must be in the topic, and the counts agree."""
    subprocess.run(["bash", str(ROOT / "scripts" / "build-loadgen.sh")], check=True, timeout=600)
    run_bench(
        settings,
        "bench.ingest",
        [
            *("--clients", "50", "--duration", "2", "--rounds", "1", "--warmup", "1", "--workers", "1"),
            *("--load", "vegeta"),
            *("--check-ids", "--drain-backlog", "3000", "--database", "fcfs_test_ingest", "--out-dir", str(tmp_path)),
        ],
        timeout_s=400,
    )
    figures = json.loads((tmp_path / "ingest.json").read_text())
    assert set(figures["median"]) == {
        "participation",
        "participation (jwt)",
        "participation (jwt ES256)",
        "participation (no limits)",
        "product no-I/O",
        "bare FastAPI",
        "plain ASGI",
        "durable ASGI",
    }
    assert figures["errors"] == 0 and figures["noop_in_kafka"] == 0
    assert figures["accepted_not_in_kafka"] == 0 and figures["accepted_ids_not_in_topic"] == 0
    product = figures["runs"]["participation"][0]
    assert product["status_codes"]["2xx"] == product["accepted_ids"] == product["accepted_by_server"]
    assert product["accepted_by_server"] == product["in_kafka"] > 0
    for name in ("participation (jwt)", "participation (jwt ES256)"):  # bearer tokens, verified on every request
        with_tokens = figures["runs"][name][0]
        assert with_tokens["status_codes"]["2xx"] == with_tokens["accepted_ids"] == with_tokens["in_kafka"] > 0
    assert figures["runs"]["durable ASGI"][0]["in_kafka"] > 0  # the ceiling is durable too
    assert figures["while_draining"]["requests_per_s"] > 0 and figures["while_draining"]["errors"] == 0
    assert (tmp_path / "ingest.png").read_bytes()[:4] == b"\x89PNG"


def test_ingest_experiment_runs_with_wrk(settings: Settings, tmp_path: Path) -> None:
    run_bench(
        settings,
        "bench.ingest",
        [
            *("--clients", "50", "--duration", "2", "--rounds", "1", "--workers", "1", "--only", "participation"),
            *("--database", "fcfs_test_ingest", "--out-dir", str(tmp_path)),
        ],
        timeout_s=300,
    )
    figures = json.loads((tmp_path / "ingest.json").read_text())
    product = figures["runs"]["participation"][0]
    assert figures["errors"] == 0 and product["accepted_by_server"] == product["in_kafka"] > 0
    assert product["status_codes"]["2xx"] <= product["accepted_by_server"]  # wrk stops with requests in flight


def test_the_noop_endpoint_is_served_only_when_asked(settings: Settings, processes: Processes) -> None:
    api = processes.api(settings)
    campaign_id = api.create_campaign(total_stock=1)
    with api.client() as client:
        assert client.post(f"/api/campaigns/{campaign_id}/participation-noop", json={"userId": 1}).status_code == 404


def test_partitions_experiment_finds_violations_only_unkeyed(settings: Settings, tmp_path: Path) -> None:
    run_bench(
        settings,
        "bench.partitions",
        [
            *("--messages", "3000", "--campaigns", "3", "--stock", "50", "--partitions", "1", "2", "--runs", "1"),
            *("--database", "fcfs_test_partitions", "--out-dir", str(tmp_path)),
        ],
        timeout_s=600,
    )
    figures = json.loads((tmp_path / "partitions.json").read_text())
    rows = {(r["partitions"], r["placement"]): r for r in figures["results"]}
    assert set(rows) == {(n, p) for n in (1, 2) for p in ("placed", "murmur2", "unkeyed")}
    for r in rows.values():
        assert r["winners"] == 150 and sum(r["messages_per_partition"]) == 3000
        assert r["busiest_share"] == round(max(r["messages_per_partition"]) / 3000, 3)
    assert all(r["fcfs_violations"] == 0 for key, r in rows.items() if key != (2, "unkeyed"))
    assert rows[(2, "unkeyed")]["fcfs_violations"] > 0  # spread over two partitions, later requests overtake
    assert rows[(2, "unkeyed")]["messages_per_partition"] == [1500, 1500]
    # placed: campaigns 1 and 3 on partition 0, campaign 2 on partition 1 (the order the API places them in)
    events = bench_requests(3000, 3, seed=7)
    per_campaign = {cid: sum(e.campaign_id == cid for e in events) for cid in (1, 2, 3)}
    assert rows[(2, "placed")]["messages_per_partition"] == [per_campaign[1] + per_campaign[3], per_campaign[2]]
    assert [c["writers"] for c in figures["database_ceiling"]] == [1, 2]
    assert all(c["decisions_per_s"] > 0 for c in figures["database_ceiling"])
    assert (tmp_path / "partitions.png").read_bytes()[:4] == b"\x89PNG"


def test_lookups_benchmark_runs(settings: Settings, tmp_path: Path) -> None:
    arguments = ["--requests", "400", "--waiters", "300", "--clients", "50", "--duration", "2", "--rounds", "1"]
    run_bench(
        settings, "bench.lookups", [*arguments, "--database", "fcfs_test_lookups", "--out-dir", str(tmp_path)], 300
    )
    figures = json.loads((tmp_path / "lookups.json").read_text())
    (look,), (intake,), (held,) = figures["lookups"], figures["intake"], figures["held"]
    assert look["errors"] == 0 and look["requests_per_s"] > 0 and intake["errors"] == 0
    assert look["selects_per_lookup"] < 0.5  # answered from the feed: a read each would be 1 and more
    assert held["waiters"] == held["answered"] == 300 and held["errors"] == held["intake_errors"] == 0
    page = (tmp_path / "lookups.md").read_text()
    assert "Look-ups ÷ intake" in page and "Intake while 300 are held: median" in page
    assert "Received after the decision: p50" in page


def test_per_call_benchmark_runs(settings: Settings, tmp_path: Path) -> None:
    run_bench(settings, "bench.per_call", ["--calls", "200", "--repeats", "2", "--out-dir", str(tmp_path)], 120)
    rows = {r["call"]: r for r in json.loads((tmp_path / "per-call.json").read_text())["results"]}
    assert set(rows) == {
        "limits check (address + user)",
        *(f"token {alg}, {lib}" for alg in ("HS256", "ES256") for lib in ("joserfc (the door)", "PyJWT")),
    }
    assert all(len(r["runs_us"]) == 2 and r["median_us"] > 0 for r in rows.values())


def test_ops_plane_benchmark_runs(settings: Settings, tmp_path: Path) -> None:
    run_bench(
        settings,
        "bench.ops_plane",
        [
            "--clients",
            "50",
            "--duration",
            "2",
            "--idle",
            "2",
            "--rounds",
            "1",
            "--database",
            "fcfs_test_ops",
            "--out-dir",
            str(tmp_path),
        ],
        timeout_s=300,
    )
    figures = json.loads((tmp_path / "ops-plane.json").read_text())
    assert [r["layout"] for r in figures["results"]] == ["one plane", "two planes", "two planes, door niced"]
    for r in figures["results"]:
        assert r["errors"] == 0 and r["intake_alone_per_s"] > 0 and r["intake_with_polls_per_s"] > 0
        assert len(r["intake_alone_runs"]) == len(r["intake_with_polls_runs"]) == 1
        assert r["idle_poll_ms"]["polls"] >= 1 and r["storm_poll_ms"]["polls"] >= 1


def test_sync_vs_kafka_experiment_picks_exactly_the_stock_on_both_paths(settings: Settings, tmp_path: Path) -> None:
    run_bench(
        settings,
        "bench.sync_vs_kafka",
        [
            "--clients",
            "100",
            "--stock",
            "10",
            "--rounds",
            "1",
            "--workers",
            "1",
            "--database",
            "fcfs_test_sync_kafka",
            "--out-dir",
            str(tmp_path),
        ],
        timeout_s=600,
    )
    figures = json.loads((tmp_path / "sync-vs-kafka.json").read_text())
    assert figures["winners_always_exact"] and figures["users_who_won_twice"] == 0
    for path in ("sync", "kafka"):
        run = figures["rounds"][0][path]
        assert run["decided"] == 100 and run["winners"] == 10 and run["error_rate"] == 0
        assert run["latency_ms"]["p99"] >= run["latency_ms"]["p50"] > 0
    assert (tmp_path / "sync-vs-kafka.png").read_bytes()[:4] == b"\x89PNG"
