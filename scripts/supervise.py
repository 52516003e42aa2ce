"""Run every process of the Procfile under supervisord: a crashed one is restarted, the others keep serving.

    python scripts/supervise.py [Procfile]

Writes `$RUN_DIR/supervisord.conf` (default `.run/`) from the Procfile and runs supervisord in the
foreground: each process's output goes to this terminal, a process that exits is started again
(quick successive failures back off 1 s, 2 s, 3 s, ... and supervisord logs every exit and start),
and Ctrl-C (or SIGTERM) stops them all. While it runs,
`.venv/bin/supervisorctl -c .run/supervisord.conf status` lists them and `... restart worker`
restarts one. Each command runs through `bash -c 'exec ...'`, so `${VAR:-default}` in the Procfile
works as it does under a shell, and the signals reach the process itself.
"""

from __future__ import annotations

import os
import re
import shlex
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROCESS = re.compile(r"^([A-Za-z0-9_-]+):\s*(.+)$")


def processes(procfile: Path) -> dict[str, str]:
    """The Procfile's `name: command` lines, in order."""
    found = {}
    for line in procfile.read_text().splitlines():
        match = PROCESS.match(line.strip())
        if match is not None and not line.lstrip().startswith("#"):
            found[match[1]] = match[2]
    if not found:
        raise SystemExit(f"{procfile}: no processes")
    return found


def config(programs: dict[str, str], run_dir: Path) -> str:
    """supervisord's configuration: every program restarted whenever it exits, its output to ours."""
    socket = run_dir / "supervisor.sock"
    sections = [
        "[supervisord]",
        "nodaemon=true",
        "logfile=/dev/stdout",
        "logfile_maxbytes=0",
        "loglevel=info",
        f"pidfile={run_dir / 'supervisord.pid'}",
        f"directory={ROOT}",
        "",
        "[unix_http_server]",
        f"file={socket}",
        "chmod=0700",
        "",
        "[rpcinterface:supervisor]",
        "supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface",
        "",
        "[supervisorctl]",
        f"serverurl=unix://{socket}",
    ]
    for name, command in programs.items():
        sections += [
            "",
            f"[program:{name}]",
            # %% is how supervisord's configuration writes a literal %
            "command=/bin/bash -c " + shlex.quote(f"exec {command}").replace("%", "%%"),
            f"directory={ROOT}",
            "autostart=true",
            "autorestart=true",
            # a process that ran 5 s counts as started; one that fails sooner is retried with back-off
            "startsecs=5",
            "startretries=1000",
            "stopsignal=TERM",
            "stopwaitsecs=30",
            "stopasgroup=true",
            "killasgroup=true",
            "redirect_stderr=true",
            "stdout_logfile=/dev/stdout",
            "stdout_logfile_maxbytes=0",
        ]
    return "\n".join(sections) + "\n"


def main() -> None:
    procfile = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "Procfile"
    run_dir = Path(os.environ.get("RUN_DIR", ROOT / ".run")).resolve()
    run_dir.mkdir(parents=True, exist_ok=True)
    conf = run_dir / "supervisord.conf"
    conf.write_text(config(processes(procfile), run_dir))
    supervisord = Path(sys.executable).with_name("supervisord")
    os.execv(supervisord, [str(supervisord), "--nodaemon", "--configuration", str(conf)])


if __name__ == "__main__":
    main()
