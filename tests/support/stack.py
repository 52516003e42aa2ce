"""Throwaway services from the project's stack script: a Kafka broker, a MariaDB server, a 3-broker cluster."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any

from tests.support import ROOT


@contextmanager
def _stack_service(
    name: str, kind: str, drop: str, settings: dict[str, str], address: str
) -> Iterator[tuple[str, Any, Any]]:
    """One throwaway service of the stack script (`kind`-start / `kind`-stop), its folder removed afterwards."""
    env = {k: v for k, v in os.environ.items() if k != drop}
    env.update(settings)
    script = str(ROOT / "stack" / "stack.sh")

    def start() -> None:
        subprocess.run(["bash", script, f"{kind}-start"], env=env, check=True, timeout=120)

    def stop() -> None:
        subprocess.run(["bash", script, f"{kind}-stop"], env=env, check=True, timeout=60)

    start()
    try:
        yield address, start, stop
    finally:
        stop()
        subprocess.run(["rm", "-rf", str(ROOT / ".stack" / name)], check=False)


def stack_broker(name: str, port: int) -> AbstractContextManager[tuple[str, Any, Any]]:
    """A throwaway single-node Kafka broker from the project's stack script; yields (bootstrap, start, stop)."""
    settings = {"STACK_KAFKA_NAME": name, "STACK_KAFKA_PORT": str(port), "STACK_KAFKA_HEAP": "384m"}
    return _stack_service(name, "kafka", "KAFKA_BOOTSTRAP_SERVERS", settings, f"127.0.0.1:{port}")


def stack_database(name: str, port: int) -> AbstractContextManager[tuple[str, Any, Any]]:
    """A throwaway MariaDB server from the project's stack script; yields (server URL, start, stop)."""
    settings = {"STACK_DB_NAME": name, "STACK_DB_PORT": str(port)}
    return _stack_service(name, "db", "DATABASE_URL", settings, f"mysql+pymysql://fcfs:fcfs@127.0.0.1:{port}/")


@contextmanager
def stack_cluster(name: str, port: int) -> Iterator[tuple[str, Any, Any]]:
    """A throwaway 3-broker KRaft cluster from the stack script; yields (bootstrap, kill(n), start(n))."""
    env = {k: v for k, v in os.environ.items() if k != "KAFKA_BOOTSTRAP_SERVERS"}
    env.update(STACK_CLUSTER_NAME=name, STACK_CLUSTER_PORT=str(port), STACK_KAFKA_HEAP="384m")
    script = str(ROOT / "stack" / "stack.sh")

    def run(*args: str) -> str:
        return subprocess.run(
            ["bash", script, *args], env=env, check=True, timeout=180, capture_output=True, text=True
        ).stdout.strip()

    run("cluster-up")
    try:
        yield (
            run("cluster-bootstrap"),
            lambda n: run("cluster-broker-kill", str(n)),
            lambda n: run("cluster-broker-start", str(n)),
        )
    finally:
        run("cluster-down")
        subprocess.run(
            f"rm -rf {ROOT / '.stack' / name}-* {ROOT / '.stack' / name}.cluster-id", shell=True, check=False
        )
