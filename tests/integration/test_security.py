"""Abuse limits, request ids, metrics, and the refusal to run production with the example secrets."""

from __future__ import annotations

import subprocess
import sys

import pytest

from fcfs.kafka import end_offsets
from fcfs.settings import EXAMPLE_ADMIN_TOKEN, EXAMPLE_REQUEST_ID_SECRET, Settings
from tests.support import ADMIN_TOKEN, ROOT, Processes, settings_env


def test_participation_is_rate_limited_per_client(settings: Settings, processes: Processes) -> None:
    api = processes.api(settings, PARTICIPATION_RATE_LIMIT="1", PARTICIPATION_RATE_BURST="3")
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


def test_errors_never_leak_internals(settings: Settings, processes: Processes) -> None:
    api = processes.api(settings)
    with api.client(admin=True) as client:
        for r in (
            client.get("/nope"),
            client.delete("/api/admin/campaigns"),
            client.post("/api/admin/campaigns", content=b"{", headers={"content-type": "application/json"}),
        ):
            body = r.text
            assert r.status_code < 500 and r.json()["errorCode"]
            assert "Traceback" not in body and "sqlalchemy" not in body.lower() and 'File "' not in body


@pytest.mark.parametrize("secret", ["admin_token", "request_id_secret"])
def test_production_refuses_the_example_secrets(base_settings: Settings, secret: str) -> None:
    production = base_settings.model_copy(
        update={
            "app_env": "production",
            "admin_token": "a-real-token",
            "request_id_secret": "a-real-secret",
            secret: EXAMPLE_ADMIN_TOKEN if secret == "admin_token" else EXAMPLE_REQUEST_ID_SECRET,
        }
    )
    with pytest.raises(RuntimeError, match="production"):
        production.check_production_secrets()
    env = settings_env(production)
    result = subprocess.run(
        [sys.executable, "-c", "import backend.main"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode != 0 and "APP_ENV=production" in result.stderr
    production.model_copy(update={secret: "something-else"}).check_production_secrets()  # a real secret is fine


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
