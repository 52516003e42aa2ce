"""Smoke-sized runs of the benchmark commands, so they keep working (figures come from full runs)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from fcfs.settings import Settings
from tests.support import ROOT, settings_env


def test_worker_drain_benchmark_runs_and_saves_figures(settings: Settings, tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.worker_drain",
            "--messages",
            "600",
            "--runs",
            "1",
            "--batch-size",
            "200",
            "--database",
            "fcfs_test",
            "--out-dir",
            str(tmp_path),
        ],
        cwd=ROOT,
        env=settings_env(settings),
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    figures = json.loads((tmp_path / "worker-drain.json").read_text())
    assert figures["runs"][0]["messages"] == 600
    assert figures["median"]["decided_per_s"] > 0
    assert "messages/s" in (tmp_path / "worker-drain.md").read_text()


def test_raw_vs_batch_experiment_runs_and_agrees(settings: Settings, tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.raw_vs_batch",
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
        cwd=ROOT,
        env=settings_env(settings),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    figures = json.loads((tmp_path / "raw-vs-batch.json").read_text())
    assert figures["mismatches"] == 0
    assert figures["history_rows"] > 2000
    assert set(figures["figures"]) == {"daily-raw", "daily-batched", "period-raw", "period-batched"}
    assert (tmp_path / "raw-vs-batch.png").read_bytes()[:4] == b"\x89PNG"
    assert "faster" in (tmp_path / "raw-vs-batch.md").read_text()


def test_dashboard_poll_benchmark_runs(settings: Settings, tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.dashboard_poll",
            "--rows",
            "5000",
            "--polls",
            "3",
            "--database",
            "fcfs_test_dashboard",
            "--out-dir",
            str(tmp_path),
        ],
        cwd=ROOT,
        env=settings_env(settings),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    figures = json.loads((tmp_path / "dashboard-poll.json").read_text())
    assert figures["history_rows"] == 5000 and figures["polls"] == 3
    assert figures["poll_ms"]["p50"] > 0
