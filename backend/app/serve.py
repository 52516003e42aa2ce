"""Serve the API: `python -m backend [--host H] [--port P] [--workers N]` (defaults: API_HOST, API_PORT, API_WORKERS).

The one command line that every launcher uses — the Procfile, Docker, the tests and the benchmarks.
The server is granian (Rust HTTP server, BSD-3-Clause), one process per worker, on its RSGI interface
(`backend.app.rsgi`: the door served from it directly, the FastAPI app through a bridge): in the ingest
benchmark it serves the participation door at several times uvicorn's rate on the same cores
(docs/experiments/ingest.md). A worker that crashes is started again; a worker whose
server process dies (even by SIGKILL) shuts down cleanly instead of serving on as an orphan.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import signal
import sys
import tempfile
import threading
from collections.abc import Callable

from granian import Granian
from granian.constants import Interfaces, Loops
from granian.http import HTTP1Settings
from granian.log import LogLevels

from backend.door.rate_limit import RATE_LIMIT_FILE
from fcfs.settings import Settings, get_settings

SERVER_PID = "FCFS_API_SERVER_PID"  # set by the server process, read by its workers
PR_SET_PDEATHSIG = 1


def api_command(
    port: int,
    *,
    host: str = "127.0.0.1",
    workers: int = 1,
    loop: str = "auto",
    log_level: str = "info",
    access_log: bool = False,
) -> list[str]:
    """The command line that serves the API with this interpreter (for tests and benchmarks)."""
    return [
        sys.executable,
        "-m",
        "backend",
        "--host",
        host,
        "--port",
        str(port),
        "--workers",
        str(workers),
        "--loop",
        loop,
        "--log-level",
        log_level,
        *(["--access-log"] if access_log else []),
    ]


def follow_server() -> None:
    """In a worker process: get SIGTERM (a clean shutdown) when the server process that forked it dies."""
    server = os.environ.get(SERVER_PID)
    if server is None or not sys.platform.startswith("linux"):
        return
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != int(server):  # it died before we asked
        os.kill(os.getpid(), signal.SIGTERM)


def dying_with_parent() -> Callable[[], None] | None:
    """A `preexec_fn` for a child process started by a test or a benchmark: the child gets SIGTERM when its
    starter dies (killed, or timed out by its own caller), so no server outlives the run that started it. Only
    from the main thread: the kernel signals the child when the thread that started it ends."""
    if not sys.platform.startswith("linux") or threading.current_thread() is not threading.main_thread():
        return None

    prctl = ctypes.CDLL(None, use_errno=True).prctl  # looked up here: a forked child must not load libraries

    def ask() -> None:
        prctl(PR_SET_PDEATHSIG, signal.SIGTERM)

    return ask


def main(argv: list[str] | None = None) -> None:
    settings = get_settings()
    parser = argparse.ArgumentParser(prog="python -m backend", description=__doc__)
    parser.add_argument("--host", help="the address to listen on (API_HOST; with --plane ops, OPS_HOST)")
    parser.add_argument("--port", type=int, default=settings.api_port)
    parser.add_argument("--workers", type=int, default=settings.api_workers, help="server processes")
    parser.add_argument(
        "--loop", choices=("auto", "asyncio", "uvloop"), default="auto", help="event loop (auto: uvloop if installed)"
    )
    parser.add_argument(
        "--plane",
        choices=("all", "public", "ops"),
        default=settings.api_plane,
        help="public: the crowd's routes only (participation, campaign reads, health); ops: every route but "
        "the participation door, for the dashboard and operators on a port of their own; all: every route (API_PLANE)",
    )
    parser.add_argument(
        "--nice",
        type=int,
        choices=range(20),
        default=settings.api_nice,
        metavar="0-19",
        help="CPU niceness added to the server's processes (API_NICE): the crowd's door below the operators' plane",
    )
    parser.add_argument("--access-log", action="store_true", help="log every request")
    parser.add_argument("--log-level", choices=[level.value for level in LogLevels], default="info")
    args = parser.parse_args(argv)
    if args.host is None:
        args.host = settings.ops_host if args.plane == "ops" else settings.api_host
    if args.nice:
        os.nice(args.nice)  # inherited by the server's worker processes
    os.environ[SERVER_PID] = str(os.getpid())
    os.environ["API_PLANE"] = args.plane  # read by the app in every server process
    get_settings.cache_clear()  # (forked server processes would inherit the settings read above)
    # the rate limits' buckets, shared by this server's workers (tmpfs when there is one)
    fd, buckets = tempfile.mkstemp(prefix="fcfs-rate-limits-", dir="/dev/shm" if os.path.isdir("/dev/shm") else None)
    os.close(fd)
    os.environ[RATE_LIMIT_FILE] = buckets
    try:
        serve(args, settings)
    finally:
        os.unlink(buckets)


def serve(args: argparse.Namespace, settings: Settings) -> None:
    Granian(
        "backend.app.main:rsgi_app",
        address=args.host,
        port=args.port,
        interface=Interfaces.RSGI,
        workers=args.workers,
        loop=Loops(args.loop),
        websockets=False,
        backlog=2048,
        # the header read's timeout is also the keep-alive's idle one: a quiet connection is closed after it
        http1_settings=HTTP1Settings(header_read_timeout=int(settings.idle_timeout_s * 1000)),
        # held look-ups (waitSeconds) are requests in progress too: room for every one of them, and the rest
        backpressure=settings.api_backpressure or settings.wait_max_held + 2048,
        log_level=LogLevels(args.log_level),
        log_access=args.access_log,
        respawn_failed_workers=True,
        workers_kill_timeout=30,
    ).serve()
