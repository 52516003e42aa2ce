"""The files people run the system with are valid: docker-compose, Procfile, .env.example."""

from __future__ import annotations

import shutil
import subprocess

from fcfs.settings import Settings
from tests.support import ROOT


def test_docker_compose_file_is_valid() -> None:
    compose = shutil.which("docker-compose")
    assert compose, "docker-compose is needed to check docker-compose.yml (Debian package docker-compose)"
    result = subprocess.run(
        [compose, "-f", str(ROOT / "docker-compose.yml"), "config"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    for service in ("mysql", "kafka", "kafka-ui", "api", "worker", "scheduler", "dashboard"):
        assert f"  {service}:" in result.stdout


def test_env_example_names_every_setting() -> None:
    names = {
        line.split("=", 1)[0]
        for line in (ROOT / ".env.example").read_text().splitlines()
        if line and not line.startswith("#")
    }
    wanted = {field.upper() for field in Settings.model_fields}
    assert wanted <= names, wanted - names


def test_procfile_runs_every_process() -> None:
    processes = dict(line.split(":", 1) for line in (ROOT / "Procfile").read_text().splitlines() if line.strip())
    assert "python -m backend" in processes["api"]
    assert "python -m worker" in processes["worker"]
    assert "python -m batch.scheduler" in processes["scheduler"]
    assert "streamlit run dashboard/app.py" in processes["dashboard"]


def test_cluster_override_gives_three_brokers_and_replication() -> None:
    compose = shutil.which("docker-compose")
    assert compose, "docker-compose is needed (Debian package docker-compose)"
    result = subprocess.run(
        [compose, "-f", str(ROOT / "docker-compose.yml"), "-f", str(ROOT / "docker-compose.cluster.yml"), "config"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    for needle in (
        "  kafka-2:",
        "  kafka-3:",
        "KAFKA_BOOTSTRAP_SERVERS: kafka:9092,kafka-2:9092,kafka-3:9092",
        "KAFKA_MIN_INSYNC_REPLICAS:",
        "1@kafka:9093,2@kafka-2:9093,3@kafka-3:9093",
    ):
        assert needle in result.stdout, needle
