"""Test helpers: the real processes (API, worker, a throwaway broker) and queries on the real stack."""

from __future__ import annotations

import contextlib
import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson
import psutil
from pydantic import SecretStr
from sqlalchemy import Engine, func, select

from backend.app.serve import api_command
from fcfs.events import ParticipationEvent, signed_event
from fcfs.kafka import read_topic
from fcfs.request_ids import RequestIdSigner
from fcfs.schema import Outcome, campaign, participation_history
from fcfs.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
ADMIN_TOKEN = "test-admin-token"


def signed(settings: Settings, campaign_id: int, user_id: int, now_ms: int = 1_700_000_000_000) -> ParticipationEvent:
    """A request as the API would publish it (its id signed with the test's secret), to write to the topic."""
    return signed_event(
        RequestIdSigner(settings.request_id_secret.get_secret_value()), campaign_id, user_id, now_ms=now_ms
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def free_ports(count: int) -> int:
    """The first of `count` consecutive free ports, below the kernel's ephemeral range (32768 and up):
    a server restarted on them cannot find one taken meanwhile by some client's outgoing connection."""
    rng = random.Random()
    for _ in range(200):
        base = rng.randrange(20_000, 32_000 - count)
        try:
            with contextlib.ExitStack() as stack:
                for port in range(base, base + count):
                    sock = stack.enter_context(socket.socket())
                    sock.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
    raise RuntimeError(f"no {count} consecutive free ports")


def settings_env(settings: Settings, **extra: str) -> dict[str, str]:
    """The environment that makes a child process see `settings` (plus `extra`)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KAFKA_", "DATABASE_", "WORKER_", "DB_"))}
    for name, value in settings.model_dump(exclude={"dlq_topic"}).items():
        env[name.upper()] = value.get_secret_value() if isinstance(value, SecretStr) else str(value)
    env["PYTHONPATH"] = str(ROOT)
    env.update(extra)
    return env


@dataclass
class Proc:
    """A child process of the test, with its output in a log file."""

    popen: subprocess.Popen[bytes]
    log_path: Path
    name: str

    def log(self, last: int | None = None) -> str:
        """The process's output, all of it (what a test looks for may be anywhere), or its last `last` characters."""
        text = self.log_path.read_text(errors="replace")
        return text if last is None else text[-last:]

    def kill(self) -> None:
        """SIGKILL: no chance to finish anything."""
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGKILL)
        self.popen.wait(10)

    def terminate(self, timeout_s: float = 30) -> int:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
        try:
            return self.popen.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.kill()
            raise

    def wait(self, timeout_s: float) -> int:
        try:
            return self.popen.wait(timeout_s)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"{self.name} still running after {timeout_s} s:\n{self.log(5000)}") from None


@dataclass
class Processes:
    """Starts processes for a test and makes sure none outlives it."""

    tmp: Path
    started: list[Proc] = field(default_factory=list)
    since: float = field(default_factory=time.time)

    def start(self, name: str, args: list[str], env: dict[str, str], group: bool = False) -> Proc:
        """Start a process; with `group`, in a process group of its own that `stop_all` kills whole."""
        log_path = self.tmp / f"{name}-{len(self.started)}.log"
        handle = log_path.open("wb")
        popen = subprocess.Popen(
            args, cwd=ROOT, env=env, stdout=handle, stderr=subprocess.STDOUT, start_new_session=group
        )
        proc = Proc(popen, log_path, name)
        self.started.append(proc)
        return proc

    def api(self, settings: Settings, workers: int = 1, access_log: bool = False, **extra: str) -> Api:
        return self.api_on(settings, free_port(), workers, access_log, **extra)

    def api_on(self, settings: Settings, port: int, workers: int = 1, access_log: bool = False, **extra: str) -> Api:
        env = settings_env(settings, ADMIN_TOKEN=ADMIN_TOKEN, **extra)
        proc = self.start("api", api_command(port, workers=workers, access_log=access_log), env)
        api = Api(f"http://127.0.0.1:{port}", proc)
        api.wait_live()
        return api

    def worker(self, settings: Settings, *args: str, **extra: str) -> Proc:
        return self.start("worker", [sys.executable, "-m", "worker", *args], settings_env(settings, **extra))

    def stop_all(self) -> None:
        for proc in self.started:
            if proc.popen.poll() is None:
                proc.kill()
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.popen.pid, signal.SIGKILL)  # its children too, if it leads a group
        for crowd in psutil.process_iter(["cmdline", "create_time"]):  # crowds an API started, in sessions of their own
            cmdline = crowd.info["cmdline"] or []
            if cmdline[1:4] == ["-m", "crowd", "--run"] and crowd.info["create_time"] >= self.since:
                with contextlib.suppress(psutil.Error):
                    crowd.kill()


@dataclass
class Api:
    base_url: str
    proc: Proc

    def wait_live(self, timeout_s: float = 30) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.popen.poll() is not None:
                raise AssertionError(f"API exited:\n{self.proc.log(5000)}")
            try:
                if httpx.get(f"{self.base_url}/health/live", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"API not live after {timeout_s} s:\n{self.proc.log(5000)}")

    def client(self, admin: bool = False, **kwargs: Any) -> httpx.Client:
        headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"} if admin else {}
        return httpx.Client(base_url=self.base_url, headers=headers, timeout=30, **kwargs)

    def async_client(self, **kwargs: Any) -> httpx.AsyncClient:
        limits = httpx.Limits(max_connections=1000, max_keepalive_connections=1000)
        return httpx.AsyncClient(base_url=self.base_url, timeout=60, limits=limits, **kwargs)

    def create_campaign(self, total_stock: int, name: str = "test campaign", **fields: Any) -> int:
        with self.client(admin=True) as c:
            r = c.post("/api/admin/campaigns", json={"name": name, "totalStock": total_stock, **fields})
        assert r.status_code == 201, r.text
        return int(r.json()["data"]["id"])

    def status(self, campaign_id: int) -> dict[str, Any]:
        with self.client() as c:
            r = c.get(f"/api/campaigns/{campaign_id}/status")
        assert r.status_code == 200, r.text
        data: dict[str, Any] = r.json()["data"]
        return data


def history_counts(engine: Engine, campaign_id: int) -> dict[str, int]:
    with engine.connect() as conn:
        rows = conn.execute(
            select(participation_history.c.status, func.count())
            .where(participation_history.c.campaign_id == campaign_id)
            .group_by(participation_history.c.status)
        ).all()
    counts = {o.value: 0 for o in Outcome}
    counts.update({status.value: n for status, n in rows})
    return counts


def decided_count(engine: Engine, campaign_id: int) -> int:
    """The campaign's history rows: its requests decided so far."""
    with engine.connect() as conn:
        return int(conn.scalar(select(func.count()).where(participation_history.c.campaign_id == campaign_id)) or 0)


def history_rows(engine: Engine, campaign_id: int) -> list[Any]:
    with engine.connect() as conn:
        return list(
            conn.execute(
                select(participation_history)
                .where(participation_history.c.campaign_id == campaign_id)
                .order_by(participation_history.c.kafka_partition, participation_history.c.kafka_offset)
            ).all()
        )


def campaign_row(engine: Engine, campaign_id: int) -> Any:
    with engine.connect() as conn:
        return conn.execute(select(campaign).where(campaign.c.id == campaign_id)).one()


def assert_counters_match_history(engine: Engine, campaign_id: int) -> dict[str, int]:
    """I1 and the O(1) counters: the campaign row agrees with the history table."""
    counts = history_counts(engine, campaign_id)
    row = campaign_row(engine, campaign_id)
    assert row.success_count == counts["SUCCESS"]
    assert row.fail_count == counts["FAIL"]
    assert row.duplicate_count == counts["DUPLICATE"]
    assert row.current_stock == row.total_stock - counts["SUCCESS"] >= 0
    return counts


def assert_decided_as_the_log_says(
    settings: Settings, engine: Engine, campaign_id: int, stock: int, partition: int | None = None
) -> int:
    """Walk the topic in Kafka's order and check every request's row: the first `stock` distinct users
    SUCCESS, a user's later requests DUPLICATE, the others FAIL, each at its own partition and offset, none
    missing and none extra. With `partition`, the campaign's placement: only that partition's requests
    (others are dead-lettered). Returns the number of requests checked."""
    rows = {r.request_id: r for r in history_rows(engine, campaign_id)}
    seen: set[int] = set()
    winners = checked = 0
    for message in read_topic(settings):
        event = orjson.loads(message.value() or b"{}")
        if event.get("campaignId") != campaign_id or partition not in (None, message.partition()):
            continue
        user = event["userId"]
        if user in seen:
            expected = "DUPLICATE"
        elif winners < stock:
            expected, winners = "SUCCESS", winners + 1
        else:
            expected = "FAIL"
        seen.add(user)
        row = rows.pop(event["requestId"], None)
        assert row is not None, f"request {event['requestId']} at offset {message.offset()} was not decided"
        assert (row.status.value, row.user_id, row.kafka_partition, row.kafka_offset) == (
            expected,
            user,
            message.partition(),
            message.offset(),
        ), row
        checked += 1
    assert not rows, f"{len(rows)} rows for requests that are not in the log"
    return checked


def wait_until(predicate: Any, timeout_s: float, what: str, interval_s: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval_s)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


@contextmanager
def stack_broker(name: str, port: int) -> Iterator[tuple[str, Any, Any]]:
    """A throwaway single-node Kafka broker from the project's stack script, with start/stop controls."""
    env = {k: v for k, v in os.environ.items() if k != "KAFKA_BOOTSTRAP_SERVERS"}
    env.update(STACK_KAFKA_NAME=name, STACK_KAFKA_PORT=str(port), STACK_KAFKA_HEAP="384m")
    script = str(ROOT / "stack" / "stack.sh")

    def start() -> None:
        subprocess.run(["bash", script, "kafka-start"], env=env, check=True, timeout=120)

    def stop() -> None:
        subprocess.run(["bash", script, "kafka-stop"], env=env, check=True, timeout=60)

    start()
    try:
        yield f"127.0.0.1:{port}", start, stop
    finally:
        stop()
        subprocess.run(["rm", "-rf", str(ROOT / ".stack" / name)], check=False)


@contextmanager
def stack_database(name: str, port: int) -> Iterator[tuple[str, Any, Any]]:
    """A throwaway MariaDB server from the project's stack script; yields (server URL, start, stop)."""
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env.update(STACK_DB_NAME=name, STACK_DB_PORT=str(port))
    script = str(ROOT / "stack" / "stack.sh")

    def start() -> None:
        subprocess.run(["bash", script, "db-start"], env=env, check=True, timeout=120)

    def stop() -> None:
        subprocess.run(["bash", script, "db-stop"], env=env, check=True, timeout=60)

    start()
    try:
        yield f"mysql+pymysql://fcfs:fcfs@127.0.0.1:{port}/", start, stop
    finally:
        stop()
        subprocess.run(["rm", "-rf", str(ROOT / ".stack" / name)], check=False)


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
