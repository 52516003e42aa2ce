"""Abuse limits, request ids, metrics, and the refusal to run production with the example secrets."""

from __future__ import annotations

import logging
import re
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from pydantic import SecretStr
from sqlalchemy import delete, text

from bench.loadgen import attack, tool_binary
from fcfs.db import make_engine, server_url, utcnow
from fcfs.kafka import end_offsets
from fcfs.provision import ensure_database, migrate
from fcfs.schema import worker_heartbeat
from fcfs.settings import EXAMPLE_ADMIN_TOKEN, EXAMPLE_REQUEST_ID_SECRET, Settings
from tests.support import ADMIN_TOKEN, ROOT, free_port, settings_env, wait_until
from tests.support.processes import Api, Processes


def test_participation_is_rate_limited_per_client(settings: Settings, processes: Processes) -> None:
    api = processes.api(settings, PARTICIPATION_RATE_LIMIT="1", PARTICIPATION_RATE_BURST="3")  # users all differ
    campaign_id = api.create_campaign(total_stock=5)
    before = end_offsets(settings)
    with api.client() as client:
        answers = [client.post(f"/api/campaigns/{campaign_id}/participation", json={"userId": u}) for u in range(1, 7)]
    assert [r.status_code for r in answers[:3]] == [202, 202, 202]
    limited = [r for r in answers[3:] if r.status_code == 429]
    assert limited, [r.status_code for r in answers]
    assert limited[0].json()["errorCode"] == "RATE_LIMITED"
    assert int(limited[0].headers["Retry-After"]) >= 1
    accepted = sum(r.status_code == 202 for r in answers)
    assert sum(end_offsets(settings).values()) - sum(before.values()) == accepted  # a 429 enqueued nothing


def test_behind_a_trusted_proxy_the_client_is_the_last_address_it_names(
    settings: Settings, processes: Processes
) -> None:
    """TRUSTED_PROXIES: the limit counts the first untrusted address from the right of every X-Forwarded-For
    header, taken as one list in order; an address a client writes before the proxy's is not believed."""
    api = processes.api(
        settings, TRUSTED_PROXIES="127.0.0.1/32", PARTICIPATION_RATE_LIMIT="0.01", PARTICIPATION_RATE_BURST="2"
    )
    campaign_id = api.create_campaign(total_stock=5)
    users = iter(range(1_000, 2_000))

    def status(*forwarded: str) -> int:
        headers = [("X-Forwarded-For", value) for value in forwarded]
        with api.client() as client:
            r = client.post(
                f"/api/campaigns/{campaign_id}/participation", json={"userId": next(users)}, headers=headers
            )
        return r.status_code

    assert [status("10.1.0.1"), status("10.1.0.1"), status("10.1.0.1")] == [202, 202, 429]
    assert status("10.1.0.1, 10.2.0.1") == 202  # the proxy's hop is the last one
    assert status("10.2.0.2", "10.1.0.1") == 429  # two headers: one list, the last header's address counts
    assert status("10.1.0.1", "10.2.0.3") == 202
    assert status("10.2.0.4, 10.1.0.1") == 429  # a forged first hop changes nothing
    assert status() == 202  # the proxy's own requests: its own address


ONE_USER = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"userId": 77}'
"""

# one address (127.0.0.1), a new user in every request: only the per-address limit can hold it
MANY_USERS = """
local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("base", threads * 100000000)
end
function init(args)
  n = 0
end
function request()
  n = n + 1
  return wrk.format("POST", nil, {["Content-Type"] = "application/json"}, string.format('{"userId": %d}', base + n))
end
"""


def _cpu_s(proc: psutil.Process) -> float:
    times = proc.cpu_times()
    return float(times.user + times.system)


@pytest.mark.parametrize(
    ("limit", "script"),
    [("PARTICIPATION_USER_RATE", ONE_USER), ("PARTICIPATION_RATE", MANY_USERS)],
    ids=["one-user", "one-address"],
)
def test_a_limit_holds_across_every_api_process(
    settings: Settings, processes: Processes, tmp_path: Path, limit: str, script: str
) -> None:
    """Four server processes, 64 connections (spread over the processes by the kernel, and seen to be: each
    process did a share of the work) for 4 s, from one user or from one address with a new user in every
    request: the client gets the burst plus the rate over the time, within 10% — not four times that."""
    rate, burst, seconds = 50, 50, 4
    limits = {f"{limit}_LIMIT": str(rate), f"{limit}_BURST": str(burst)}
    api = processes.api(settings, 4, False, **limits)
    campaign_id = api.create_campaign(total_stock=10)
    url = f"{api.base_url}/api/campaigns/{campaign_id}/participation"
    if limit == "PARTICIPATION_USER_RATE":
        attack(url, clients=64, duration_s=1, first_user=1000, watched=[])  # warm every process up, other users
    servers = psutil.Process(api.proc.popen.pid).children(recursive=True)
    assert len(servers) == 4, servers
    cpu_before = [_cpu_s(p) for p in servers]
    before = sum(end_offsets(settings).values())
    lua = tmp_path / "load.lua"
    lua.write_text(script)
    out = subprocess.run(
        [tool_binary("wrk"), "-t2", "-c64", f"-d{seconds}s", "-s", str(lua), url],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    cpu = [_cpu_s(p) - b for p, b in zip(servers, cpu_before, strict=True)]
    assert min(cpu) >= 0.1 * sum(cpu), cpu  # the load went to every process, not one
    total = int(re.search(r"(\d+) requests in", out)[1])  # type: ignore[index]
    refused = int(re.search(r"Non-2xx or 3xx responses: (\d+)", out)[1])  # type: ignore[index]
    accepted = total - refused
    allowed = burst + rate * seconds
    assert refused > 4 * allowed, out  # offered: far over the limit
    # What the limit let through is counted in the log: wrk does not count the answers in flight at its end (one
    # per connection at most), and on a busy machine a produce can take a second — the last tokens' 202s with it.
    time.sleep(settings.kafka_produce_timeout_ms / 1000 + 1)  # every admitted request produced, or refused
    in_kafka = sum(end_offsets(settings).values()) - before
    assert accepted <= in_kafka <= accepted + 64, (accepted, in_kafka, out)  # no 429 enqueued anything
    assert abs(in_kafka - allowed) <= 0.1 * allowed, (in_kafka, accepted, allowed, out)


def test_request_ids_are_echoed_and_metrics_are_served(settings: Settings, processes: Processes) -> None:
    api = processes.api(settings)
    with api.client() as client:
        mine = client.get("/health/live", headers={"X-Request-ID": "trace-123"})
        assert mine.headers["x-request-id"] == "trace-123"
        assigned = client.get("/api/campaigns/987654321/status")
        assert assigned.status_code == 404 and len(assigned.headers["x-request-id"]) >= 8
        hostile = client.get("/health/live", headers={"X-Request-ID": "x" * 500})
        assert hostile.headers["x-request-id"] != "x" * 500
        metrics = client.get("/metrics").text
    assert (
        'fcfs_http_request_duration_seconds_count{method="GET",route="/api/campaigns/{campaignId}/status",'
        'status="404"}' in metrics
    )


LEAKS = re.compile(
    r"Traceback|File \"|sqlalchemy|pymysql|SELECT |FROM |campaign_second|worker_heartbeat|ValueError", re.I
)


def test_errors_never_leak_internals(settings: Settings, processes: Processes) -> None:
    """Real failures, not only refusals: a 500 (a heartbeat row the code cannot read) and a database error
    (a table gone) answer with the envelope and nothing of the trace or the SQL; the log has the trace,
    under the caller's request id."""
    server, _ = server_url(settings.database_url)
    url = server + "fcfs_test_leaks"
    ensure_database(url)
    migrate(url)
    engine = make_engine(url, pool_size=1)
    try:
        with engine.begin() as conn:
            conn.execute(delete(worker_heartbeat))
            now = utcnow()
            conn.execute(
                worker_heartbeat.insert().values(
                    worker_id="corrupt", consumer_group="g", topic="t", partitions="0,one", decided_total=0,
                    dead_lettered_total=0, batches_total=0, db_retries_total=0, started_at=now, heartbeat_at=now,
                    state="RUNNING",
                )
            )  # fmt: skip
        api = processes.api(settings.model_copy(update={"database_url": url}), access_log=True)
        campaign_id = api.create_campaign(total_stock=1)
        with api.client(admin=True) as client:
            refusals = [
                client.get("/nope"),
                client.delete("/api/admin/campaigns"),
                client.post("/api/admin/campaigns", content=b"{", headers={"content-type": "application/json"}),
            ]
            crash = client.get("/api/admin/workers", headers={"X-Request-ID": "trace-500"})
            with engine.begin() as conn:
                conn.execute(text("DROP TABLE campaign_second"))
            database = client.get(f"/api/campaigns/{campaign_id}/timeline", headers={"X-Request-ID": "trace-db"})
        for r in refusals:
            assert r.status_code < 500 and r.json()["errorCode"] and not LEAKS.search(r.text), r.text
        assert (crash.status_code, crash.json()["errorCode"], crash.json()["message"]) == (
            500,
            "INTERNAL_ERROR",
            "internal error",
        )
        assert (database.status_code, database.json()["errorCode"]) == (503, "DATABASE_ERROR")
        for r, request_id in ((crash, "trace-500"), (database, "trace-db")):
            assert not LEAKS.search(r.text), r.text
            assert r.headers["x-request-id"] == request_id
        log = api.proc.log()
        assert re.search(
            r"ERROR backend.app.observability \[trace-500\] unhandled error on GET /api/admin/workers", log
        )
        assert "ValueError" in log  # the trace is in the log, not in the answer
        assert re.search(
            r"ERROR backend.app.errors \[trace-db\] database error on GET .*timeline.*campaign_second", log
        )
        assert '"GET /api/admin/workers' in log  # the access log is on
        assert ADMIN_TOKEN not in log
    finally:
        engine.dispose()
        admin = make_engine(server, pool_size=1)
        with admin.begin() as conn:
            conn.execute(text("DROP DATABASE IF EXISTS fcfs_test_leaks"))
        admin.dispose()


@pytest.mark.parametrize("secret", ["admin_token", "request_id_secret"])
def test_production_refuses_the_example_secrets(base_settings: Settings, secret: str) -> None:
    production = base_settings.model_copy(
        update={
            "app_env": "production",
            "admin_token": SecretStr("a-real-token"),
            "request_id_secret": SecretStr("a-real-secret"),
            secret: SecretStr(EXAMPLE_ADMIN_TOKEN if secret == "admin_token" else EXAMPLE_REQUEST_ID_SECRET),
        }
    )
    with pytest.raises(RuntimeError, match="production"):
        production.check_secrets(logging.getLogger("test"))
    env = settings_env(production)
    result = subprocess.run(
        [sys.executable, "-c", "import backend.app.main"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode != 0 and "APP_ENV=production" in result.stderr
    production.model_copy(update={secret: SecretStr("something-else")}).check_secrets(
        logging.getLogger("test")
    )  # real: fine


def test_every_admin_route_needs_the_token_and_logs_keep_it_secret(settings: Settings, processes: Processes) -> None:
    api = processes.api(settings)
    with api.client() as client:
        paths = client.get("/openapi.json").json()["paths"]
        admin = [
            (method.upper(), path) for path, ops in paths.items() if path.startswith("/api/admin") for method in ops
        ]
        assert len(admin) >= 12
        for method, path in admin:
            concrete = path.replace("{jobExecutionId}", "1")
            for headers in ({}, {"Authorization": "Bearer nope"}):
                r = client.request(method, concrete, headers=headers, json={})
                assert (r.status_code, r.json()["errorCode"]) == (401, "UNAUTHORIZED"), (method, path)
                assert r.headers["www-authenticate"] == "Bearer"
    with api.client(admin=True) as client:
        client.get("/api/admin/campaigns")
        client.post("/api/admin/campaigns", json={"name": "x"})
    assert ADMIN_TOKEN not in api.proc.log()


def test_metrics_can_be_restricted_to_a_token_and_example_secrets_are_warned_about(
    settings: Settings, processes: Processes
) -> None:
    example = settings.model_copy(update={"request_id_secret": SecretStr(EXAMPLE_REQUEST_ID_SECRET)})
    api = processes.api(example, METRICS_TOKEN="scraper-token")
    assert "REQUEST_ID_SECRET still the example value" in api.proc.log()
    with api.client() as client:
        for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": f"Bearer {ADMIN_TOKEN}"}):
            refused = client.get("/metrics", headers=headers)
            assert (refused.status_code, refused.json()["errorCode"]) == (401, "UNAUTHORIZED")
        served = client.get("/metrics", headers={"Authorization": "Bearer scraper-token"})
        assert served.status_code == 200 and "fcfs_http_request_duration_seconds" in served.text
    worker = processes.worker(example, "--drain")
    assert worker.wait(60) == 0
    assert "REQUEST_ID_SECRET still the example value" in worker.log()


def test_the_doors_answers_are_counted_per_second_and_survive_a_restart(
    settings: Settings, processes: Processes
) -> None:
    """The Live page's intake curve: 202s and 429s per campaign and second, in the database."""
    api = processes.api(settings, PARTICIPATION_RATE_LIMIT="1", PARTICIPATION_RATE_BURST="4")
    campaign_id = api.create_campaign(total_stock=5)
    with api.client() as client:
        codes = [
            client.post(f"/api/campaigns/{campaign_id}/participation", json={"userId": u}).status_code
            for u in range(1, 11)
        ]
    assert codes.count(202) >= 4 and codes.count(429) >= 5 and set(codes) == {202, 429}

    def counted() -> dict[str, int]:
        with api.client() as client:
            seconds = client.get(f"/api/campaigns/{campaign_id}/timeline").json()["data"]["intake"]
        return {key: sum(p[key] for p in seconds) for key in ("accepted", "limited", "unavailable")}

    expected = {"accepted": codes.count(202), "limited": codes.count(429), "unavailable": 0}
    wait_until(lambda: counted() == expected, 10, "the counts to be written")
    api.proc.kill()
    api = processes.api(settings)
    assert counted() == expected  # kept in the database: a restart (or a page reload) loses nothing


def test_the_crowds_door_serves_no_operator_route(settings: Settings, processes: Processes) -> None:
    """API_PLANE=public (the Procfile's api line): participation and campaign reads only; the operators'
    routes live on the ops plane (the ops line), so a storm at the door does not slow the dashboard."""
    door = processes.api(settings, API_PLANE="public")
    ops = processes.api(settings, API_PLANE="ops")
    campaign_id = ops.create_campaign(total_stock=5)
    with door.client(admin=True) as client:
        paths = client.get("/openapi.json").json()["paths"]
        assert paths and not [p for p in paths if p.startswith("/api/admin")]
        for method, path in (
            ("GET", "/api/admin/campaigns"),
            ("GET", "/api/admin/kafka"),
            ("POST", "/api/admin/dlq/replay"),
        ):
            r = client.request(method, path, json={})
            assert (r.status_code, r.json()["errorCode"]) == (404, "NOT_FOUND"), path
        accepted = client.post(f"/api/campaigns/{campaign_id}/participation", json={"userId": 1})
        assert accepted.status_code == 202
        assert client.get(f"/api/campaigns/{campaign_id}/status").status_code == 200
    request_id = accepted.json()["data"]["requestId"]
    with ops.client() as client:  # no second door on the operators' plane, with limits of its own
        for path in ("participation", "participation-sync"):
            r = client.post(f"/api/campaigns/{campaign_id}/{path}", json={"userId": 2})
            assert r.status_code in (404, 405) and r.json()["errorCode"] in ("NOT_FOUND", "METHOD_NOT_ALLOWED"), path
        assert client.get(f"/api/campaigns/{campaign_id}/participation/{request_id}").status_code == 200
        paths = client.get("/openapi.json").json()["paths"]
        assert "/api/campaigns/{campaignId}/participation" not in paths
    with ops.client(admin=True) as client:
        assert client.get("/api/admin/kafka").status_code == 200


def test_the_operators_plane_listens_on_loopback_unless_configured(settings: Settings, processes: Processes) -> None:
    """API_HOST=0.0.0.0 opens the crowd's door to the network; the operators' plane stays on OPS_HOST (127.0.0.1)."""
    port = free_port()
    env = settings_env(settings, ADMIN_TOKEN=ADMIN_TOKEN, API_HOST="0.0.0.0")
    proc = processes.start("ops", [sys.executable, "-m", "backend", "--plane", "ops", "--port", str(port)], env)
    Api(f"http://127.0.0.1:{port}", proc).wait_live()
    listening = {
        c.laddr.ip
        for p in [psutil.Process(proc.popen.pid), *psutil.Process(proc.popen.pid).children(recursive=True)]
        for c in p.net_connections("tcp")
        if c.status == psutil.CONN_LISTEN and c.laddr.port == port
    }
    assert listening == {"127.0.0.1"}, listening
