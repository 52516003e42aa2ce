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
