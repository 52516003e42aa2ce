"""What the benchmark and experiment commands share: a served API process, percentiles, result files."""

from __future__ import annotations

import argparse
import json
import os
import platform
import secrets
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import psutil
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from backend.app.serve import api_command, dying_with_parent
from fcfs.db import server_url
from fcfs.provision import ensure_database, migrate
from fcfs.settings import get_settings

ROOT = Path(__file__).resolve().parent.parent
EXPERIMENTS = ROOT / "docs" / "experiments"


def database_url(name: str) -> str:
    """The configured database server, with the database `name` on it."""
    return make_url(get_settings().database_url).set(database=name).render_as_string(hide_password=False)


def fresh_database(name: str) -> str:
    """Drop, create and migrate the database `name`; return its URL."""
    url = database_url(name)
    server, db = server_url(url)
    engine = create_engine(server)
    with engine.begin() as conn:
        conn.execute(text(f"DROP DATABASE IF EXISTS `{db}`"))
    engine.dispose()
    ensure_database(url)
    migrate(url)
    return url


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# One load generator is one client address, and it replays users: the rate limits are set so high that
# they never refuse, while every request still pays for checking them (as in production).
NEVER_LIMITED = {
    name: "1000000000"
    for name in (
        "PARTICIPATION_RATE_LIMIT",
        "PARTICIPATION_RATE_BURST",
        "PARTICIPATION_USER_RATE_LIMIT",
        "PARTICIPATION_USER_RATE_BURST",
    )
}


@contextmanager
def served(command: list[str], env: dict[str, str], port: int, checkout: Path = ROOT) -> Iterator[str]:
    """Run a server command (with the code of `checkout`, this one unless told) until the block ends; yield
    its base URL once it answers HTTP.

    Every server runs at the benchmark's own CPU priority: the product's `API_NICE` is 0 unless `env` says
    otherwise (a `.env` written by scripts/up.sh says 10, which would put the product below its baselines)."""
    proc = subprocess.Popen(
        command,
        cwd=checkout,
        env={**os.environ, **NEVER_LIMITED, "API_NICE": "0", **env, "PYTHONPATH": str(checkout)},
        preexec_fn=dying_with_parent(),
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(f"{base}/health/live", timeout=1)  # any answer will do: the server is up
                break
            except httpx.TransportError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the server did not start: {' '.join(command)}")
            time.sleep(0.2)
        yield base
    finally:
        _stop(proc)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()


@contextmanager
def running_worker(env: dict[str, str]) -> Iterator[subprocess.Popen[bytes]]:
    """A worker (`python -m worker`, as the Procfile runs it) deciding what the block's servers accept."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "worker"],
        cwd=ROOT,
        env={**os.environ, "WORKER_METRICS_PORT": "0", **env, "PYTHONPATH": str(ROOT)},
        stderr=subprocess.DEVNULL,
        preexec_fn=dying_with_parent(),
    )
    try:
        yield proc
    finally:
        _stop(proc)


@contextmanager
def served_api(env: dict[str, str], workers: int = 1, loop: str = "auto") -> Iterator[tuple[str, str]]:
    """Run the API (`python -m backend`) in its own process(es) on a free port; yield (base URL, admin token)."""
    port = free_port()
    token = secrets.token_urlsafe(16)
    command = api_command(port, workers=workers, loop=loop, log_level="warning")
    with served(command, {"API_PLANE": "all", **env, "ADMIN_TOKEN": token}, port) as base:  # every route, unless asked
        yield base, token


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100), linear between closest ranks."""
    if len(values) == 1:
        return float(values[0])
    return float(statistics.quantiles(values, n=100, method="inclusive")[round(q) - 1])


def spread(values: Sequence[float]) -> str:
    """The rounds' min–max of a figure, as the pages write it beside its median."""
    return f"{min(values):,.0f}–{max(values):,.0f}"


def apart(a: Sequence[float], b: Sequence[float]) -> bool:
    """Whether two figures' rounds do not overlap: a difference worth naming, not the machine's noise."""
    return max(a) < min(b) or max(b) < min(a)


def save_json(path: Path, payload: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2, default=str) + "\n")


def save_results(
    out_dir: Path,
    stem: str,
    result: dict[str, Any],
    report: Callable[[dict[str, Any]], list[str]],
    chart: Callable[[Any, dict[str, Any]], Any],
) -> None:
    """Write an experiment's figures as `stem`.json, its report as `stem`.md and its chart as `stem`.png.

    `report` gives the Markdown lines (the chart is appended), `chart` draws a figure with the pyplot given.
    """
    save_json(out_dir / f"{stem}.json", result)
    plt = pyplot()
    figure = chart(plt, result)
    figure.tight_layout()
    figure.savefig(out_dir / f"{stem}.png")
    plt.close(figure)
    lines = [*report(result), f"![{stem.replace('-', ' ')}]({stem}.png)", ""]
    (out_dir / f"{stem}.md").write_text("\n".join(lines))


def heading(
    title: str, module: str, r: dict[str, Any], options: Sequence[str], if_set: Sequence[str] = ()
) -> list[str]:
    """A result file's first lines: its title, then the command that made it (`options` always, `if_set` when
    given), the machine and the time."""
    s = r["settings"]

    def value(v: Any) -> str:
        if isinstance(v, list | tuple):
            return " ".join(f'"{x}"' if " " in str(x) else str(x) for x in v)
        return str(v)

    def option(name: str) -> str:
        flag = f"--{name.replace('_', '-')}"
        return flag if s[name] is True else f"{flag} {value(s[name])}"

    given = [name for name in if_set if s.get(name) not in (None, False, 0, "", [])]
    command = " ".join([f"python -m {module}", *(option(name) for name in [*options, *given])])
    return [f"# {title}", "", f"`{command}` — {r['machine']['cpus']} cores, {r['measured_at']}."]


def pyplot() -> Any:
    """matplotlib's pyplot, drawing to files only (imported when a chart is drawn, not before)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def listening_process(port: int) -> psutil.Process | None:
    """The local process listening on this TCP port, if any."""
    for conn in psutil.net_connections(kind="tcp"):
        if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port and conn.pid:
            return psutil.Process(conn.pid)
    return None


def database_process(url: str) -> psutil.Process | None:
    """The local database server behind this URL, if it runs on this machine."""
    return listening_process(make_url(url).port or 3306)


def api_processes(base_url: str) -> list[psutil.Process]:
    """The processes serving base_url (the server's supervisor and its worker processes)."""
    found = listening_process(int(base_url.rsplit(":", 1)[1]))
    if found is None:
        raise RuntimeError(f"nothing listens at {base_url}")
    while (parent := found.parent()) is not None and {"backend", "granian", "uvicorn"} & set(parent.cmdline()):
        found = parent
    return [found, *found.children(recursive=True)]


def cpu_seconds_of(processes: list[psutil.Process]) -> float:
    """User + system CPU seconds the processes have used so far (those gone count as 0)."""
    total = 0.0
    for p in processes:
        try:
            t = p.cpu_times()
            total += t.user + t.system
        except psutil.NoSuchProcess:
            pass
    return total


def commit_of(checkout: Path) -> str:
    """The short commit a checkout of the project is at (its folder's name if git cannot say)."""
    try:
        done = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=checkout, capture_output=True, text=True)
    except OSError:
        return checkout.name
    return done.stdout.strip() or checkout.name


def run_header(args: argparse.Namespace) -> dict[str, Any]:
    """What every result file starts with: the command's settings, the machine, the time of the run. Other
    checkouts compared with (`--compare-with`) are named by their commit, not by where they were."""
    settings = {k: v for k, v in vars(args).items() if k != "out_dir"}
    if settings.get("compare_with"):
        settings["compare_with"] = [f"<a worktree of {commit_of(Path(c))}>" for c in settings["compare_with"]]
    return {
        "settings": settings,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
