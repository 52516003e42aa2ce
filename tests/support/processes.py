"""The real processes a test starts (API, worker, any command) with their logs, and the API as a client sees it."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil

from backend.app.serve import api_command, dying_with_parent
from fcfs.settings import Settings
from tests.support import ADMIN_TOKEN, SERVER_CHECKOUT, free_port, settings_env


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
            args,
            cwd=SERVER_CHECKOUT,
            env=env,
            stdout=handle,
            stderr=subprocess.STDOUT,
            start_new_session=group,
            preexec_fn=dying_with_parent(),
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

    def releaser(self, settings: Settings, *args: str, **extra: str) -> Proc:
        return self.start("releaser", [sys.executable, "-m", "batch.releaser", *args], settings_env(settings, **extra))

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

    def take_part(self, campaign_id: int, user: int) -> dict[str, Any]:
        """One participation, which must be accepted: its 202's data (the ticket)."""
        r = httpx.post(f"{self.base_url}/api/campaigns/{campaign_id}/participation", json={"userId": user}, timeout=30)
        assert r.status_code == 202, r.text
        return dict(r.json()["data"])

    def look_up(self, campaign_id: int, ticket: dict[str, Any], wait_s: float = 0) -> dict[str, Any]:
        """A request's state, looked up with its ticket (and held up to `wait_s`)."""
        params = {"partition": ticket["partition"], "offset": ticket["offset"], "waitSeconds": wait_s}
        url = f"{self.base_url}/api/campaigns/{campaign_id}/participation/{ticket['requestId']}"
        r = httpx.get(url, params=params, timeout=60)
        assert r.status_code == 200, r.text
        return dict(r.json()["data"])

    def status(self, campaign_id: int) -> dict[str, Any]:
        with self.client() as c:
            r = c.get(f"/api/campaigns/{campaign_id}/status")
        assert r.status_code == 200, r.text
        data: dict[str, Any] = r.json()["data"]
        return data
