"""Test helpers shared by every test: the project's root, the admin token, free ports, the environment of a child
process, waiting, a signed event."""

from __future__ import annotations

import contextlib
import os
import random
import socket
import time
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from fcfs.events import ParticipationEvent, signed_event
from fcfs.request_ids import RequestIdSigner
from fcfs.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
# The code the processes a test starts run: this checkout, or another one (TEST_SERVER_CHECKOUT, e.g. a
# `git worktree` of a former commit) to see a new test fail against the code it was written against.
SERVER_CHECKOUT = Path(os.environ.get("TEST_SERVER_CHECKOUT") or ROOT).resolve()

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
    env["PYTHONPATH"] = str(SERVER_CHECKOUT)
    env.update(extra)
    return env


def wait_until(predicate: Any, timeout_s: float, what: str, interval_s: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval_s)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
