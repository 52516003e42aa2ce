"""Load generators for the HTTP benchmarks: wrk (C, light on the CPU) and vegeta (Go), closed loop.

Both send `POST {"userId": n}` with a new user per request, from `--clients` connections that each
send their next request as soon as the last one is answered, and report the same figures. On a
2-core machine the load generator shares the cores with the server, the broker and the database:
wrk takes a fraction of vegeta's CPU for the same load, so it is the default; vegeta records every
response, so it is used where each accepted request id must be checked.
"""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import psutil

from bench.common import ROOT, cpu_seconds_of

# Every wrk script numbers its threads and ends by printing its summary as one JSON line (latencies in
# microseconds); in between, its own init() and request().
WRK_THREADS = """
local threads = 0
function setup(thread)
  thread:set("tid", threads)
  threads = threads + 1
end
"""
WRK_DONE = """
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK-JSON {"requests":%d,"duration_us":%d,"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d,' ..
    '"mean":%f,"p50":%d,"p95":%d,"p99":%d,"max":%d}\\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency.mean, latency:percentile(50), latency:percentile(95), latency:percentile(99), latency.max))
end
"""

# One new user per request: thread t of wrk sends users first + t * 10^9 + 1, + 2, ...
WRK_SCRIPT = (
    WRK_THREADS
    + """
function init(args)
  n = tonumber(args[1]) + tid * 1000000000
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
end
function request()
  n = n + 1
  return wrk.format(nil, nil, nil, '{"userId":' .. n .. '}')
end
"""
    + WRK_DONE
)

# USER_AUTH=jwt: every request carries the bearer token of a user (a file of tokens, one per line, that
# each thread goes through from its own place) and an empty body: the user is the token's.
WRK_TOKENS_SCRIPT = (
    WRK_THREADS
    + """
function init(args)
  tokens = {}
  for line in io.lines(args[1]) do tokens[#tokens + 1] = line end
  n = (tid * 7919) % #tokens
  wrk.method = "POST"
end
function request()
  n = n % #tokens + 1
  return wrk.format(nil, nil, {["Content-Type"] = "application/json", ["Authorization"] = "Bearer " .. tokens[n]}, "{}")
end
"""
    + WRK_DONE
)


def tool_binary(name: str) -> str:
    """wrk (Debian package `wrk`) or vegeta (built by scripts/build-loadgen.sh into .tools/bin)."""
    found = shutil.which(name) or str(ROOT / ".tools" / "bin" / name)
    if not Path(found).exists():
        hint = "apt-get install wrk" if name == "wrk" else "scripts/build-loadgen.sh"
        raise SystemExit(f"{name} not found: {hint}")
    return found


def py_spy_binary() -> str:
    """py-spy from this interpreter's environment (it need not be activated), else from PATH."""
    beside = Path(sys.executable).parent / "py-spy"
    return str(beside) if beside.exists() else shutil.which("py-spy") or "py-spy"


def _measured(command: list[str], watched: list[psutil.Process]) -> tuple[str, float, float]:
    """Run a load generator; its output, its CPU seconds and those of the watched processes meanwhile."""
    before = cpu_seconds_of(watched)
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    generator = psutil.Process(proc.pid)
    own = 0.0
    while proc.poll() is None:
        try:
            t = generator.cpu_times()
            own = t.user + t.system
        except psutil.NoSuchProcess:
            break
        time.sleep(0.2)
    out = proc.stdout.read() if proc.stdout else ""
    if proc.returncode != 0:
        raise RuntimeError(f"{command[0]} exited with {proc.returncode}")
    return out, own, cpu_seconds_of(watched) - before


def attack(
    url: str,
    *,
    clients: int,
    duration_s: int,
    first_user: int,
    watched: list[psutil.Process],
    tool: str = "wrk",
    collect_ids: bool = False,
    tokens: list[str] | None = None,
) -> dict[str, Any]:
    """One closed-loop run: requests/s, latency, answers by status, errors, CPU of the watched processes.

    With `tokens`, requests carry those users' bearer tokens (USER_AUTH=jwt) instead of a userId."""
    if tool == "wrk":
        return _wrk(url, clients, duration_s, first_user, watched, tokens)
    return _vegeta(url, clients, duration_s, first_user, watched, collect_ids, tokens)


def _wrk(
    url: str, clients: int, duration_s: int, first_user: int, watched: list[psutil.Process], tokens: list[str] | None
) -> dict[str, Any]:
    with tempfile.NamedTemporaryFile("w") as listed:
        listed.write("\n".join(tokens or []) + "\n")
        listed.flush()
        argument = str(first_user) if tokens is None else listed.name
        return run_wrk(url, clients, duration_s, WRK_SCRIPT if tokens is None else WRK_TOKENS_SCRIPT, argument, watched)


def run_wrk(
    url: str, clients: int, duration_s: int, script_text: str, argument: str, watched: list[psutil.Process]
) -> dict[str, Any]:
    """wrk with a script of WRK_THREADS + its own init()/request() + WRK_DONE, given one argument."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua") as script:
        script.write(script_text)
        script.flush()
        threads = min(2, clients)
        command = [tool_binary("wrk"), f"-t{threads}", f"-c{clients}", f"-d{duration_s}s", "--timeout", "30s"]
        out, own, cpu = _measured([*command, "-s", script.name, url, "--", argument], watched)
    summary = json.loads(next(line for line in out.splitlines() if line.startswith("WRK-JSON "))[9:])
    refused = summary["status"]  # answers that were not 2xx
    failed = summary["connect"] + summary["read"] + summary["write"] + summary["timeout"]
    return {
        "requests": summary["requests"],
        "requests_per_s": round(summary["requests"] / (summary["duration_us"] / 1e6)),
        "latency_ms": {k: round(summary[k] / 1000, 1) for k in ("mean", "p50", "p95", "p99", "max")},
        "status_codes": {"2xx": summary["requests"] - refused, "other": refused},
        "errors": refused + failed,
        "api_cpu_s": round(cpu, 2),
        "loadgen_cpu_s": round(own, 2),
    }


def _vegeta(
    url: str,
    clients: int,
    duration_s: int,
    first_user: int,
    watched: list[psutil.Process],
    collect_ids: bool,
    tokens: list[str] | None,
) -> dict[str, Any]:
    vegeta = tool_binary("vegeta")
    with tempfile.TemporaryDirectory() as tmp:
        targets, results = Path(tmp) / "targets.json", Path(tmp) / "results.bin"
        with targets.open("w") as f:  # one target per user; vegeta cycles through them
            if tokens is None:
                for user in range(first_user, first_user + max(clients * duration_s * 50, 10_000)):
                    body = base64.b64encode(json.dumps({"userId": user}).encode()).decode()
                    header = {"Content-Type": ["application/json"]}
                    f.write(json.dumps({"method": "POST", "url": url, "body": body, "header": header}) + "\n")
            for token in tokens or []:
                header = {"Content-Type": ["application/json"], "Authorization": [f"Bearer {token}"]}
                body = base64.b64encode(b"{}").decode()
                f.write(json.dumps({"method": "POST", "url": url, "body": body, "header": header}) + "\n")
        command = [vegeta, "attack", "-format=json", f"-targets={targets}", "-rate=0", f"-workers={clients}"]
        command += [f"-max-workers={clients}", f"-duration={duration_s}s", "-timeout=30s", f"-output={results}"]
        _, own, cpu = _measured(command, watched)
        report = json.loads(
            subprocess.run([vegeta, "report", "-type=json", str(results)], capture_output=True, check=True).stdout
        )
        ids: list[str] = []
        if collect_ids:  # the request id of every 202, from the bodies vegeta recorded
            encoded = subprocess.run(
                [vegeta, "encode", "-to=json", str(results)], capture_output=True, check=True, text=True
            ).stdout
            for line in encoded.splitlines():
                hit = json.loads(line)
                if hit["code"] == 202:
                    ids.append(json.loads(base64.b64decode(hit["body"]))["data"]["requestId"])
    lat = report["latencies"]
    codes = Counter({str(k): int(v) for k, v in report["status_codes"].items()})
    ok = sum(n for code, n in codes.items() if code.startswith("2"))
    return {
        "requests": report["requests"],
        "requests_per_s": round(report["throughput"]),
        "latency_ms": {
            k: round(lat[src] / 1e6, 1)
            for k, src in (("mean", "mean"), ("p50", "50th"), ("p95", "95th"), ("p99", "99th"), ("max", "max"))
        },
        "status_codes": {"2xx": ok, "other": report["requests"] - ok},
        "errors": report["requests"] - ok,
        "api_cpu_s": round(cpu, 2),
        "loadgen_cpu_s": round(own, 2),
        "accepted_ids": ids,
    }


def profile(pid: int, seconds: int) -> dict[str, Any]:
    """Sample one process with py-spy (`--gil`: the thread holding the GIL); its hottest functions."""
    with tempfile.NamedTemporaryFile(suffix=".txt") as raw:
        command = [py_spy_binary(), "record", "--pid", str(pid), "--duration", str(seconds), "--format", "raw"]
        subprocess.run([*command, "--output", raw.name, "--nonblocking", "--gil"], check=True, capture_output=True)
        own: Counter[str] = Counter()
        total: Counter[str] = Counter()
        samples = 0
        for line in Path(raw.name).read_text().splitlines():
            stack, _, count = line.rpartition(" ")
            n = int(count)
            frames = stack.split(";")
            samples += n
            own[_frame_label(frames[-1])] += n
            for frame in set(map(_frame_label, frames)):
                total[frame] += n
    return {
        "seconds": seconds,
        "samples": samples,
        "own": [(f, n / samples) for f, n in own.most_common(25)],
        "total": [(f, n / samples) for f, n in total.most_common(40)],
    }


def _frame_label(frame: str) -> str:
    """`func (path/to/file.py:12)` -> `func (file.py)`."""
    name, _, where = frame.partition(" (")
    file = where.rstrip(")").rsplit(":", 1)[0]
    return f"{name} ({'/'.join(Path(file).parts[-2:])})" if file else name
