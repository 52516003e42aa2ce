"""Serve the API: `python -m backend [--host H] [--port P] [--workers N]` (defaults: API_HOST, API_PORT, API_WORKERS).

The one command line that every launcher uses — the Procfile, Docker, the tests and the benchmarks:
uvicorn on the asyncio loop (uvloop starves new connections under load, see
docs/experiments/ingest-profile.md) with the httptools parser.
"""

from __future__ import annotations

import argparse
import sys

import uvicorn

from fcfs.settings import get_settings


def api_command(
    port: int, *, host: str = "127.0.0.1", workers: int = 1, loop: str = "asyncio", log_level: str = "info"
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
    ]


def main(argv: list[str] | None = None) -> None:
    settings = get_settings()
    parser = argparse.ArgumentParser(prog="python -m backend", description=__doc__)
    parser.add_argument("--host", default=settings.api_host)
    parser.add_argument("--port", type=int, default=settings.api_port)
    parser.add_argument("--workers", type=int, default=settings.api_workers, help="server processes")
    parser.add_argument("--loop", choices=("asyncio", "uvloop"), default="asyncio")
    parser.add_argument("--access-log", action="store_true", help="log every request")
    parser.add_argument("--log-level", default="info")
    args = parser.parse_args(argv)
    uvicorn.run(
        "backend.main:app",
        host=args.host,
        port=args.port,
        workers=args.workers,
        loop=args.loop,
        http="httptools",
        access_log=args.access_log,
        log_level=args.log_level,
    )
