"""The crowd simulator against the real stack: a storm through the real door, what it reports checked
against what the door counted and the worker decided; started, followed and stopped through the admin
API; bounded, and loopback only unless allowed."""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from collections import Counter
from typing import Any

import httpx
from sqlalchemy import Engine, func, select

from crowd.runner import Crowd, Door, Tally
from fcfs.crowd_runs import get_run
from fcfs.kafka import end_offsets
from fcfs.schema import campaign_intake_second, crowd_run, crowd_run_second, participation_history
from fcfs.settings import Settings
from fcfs.simulated import SimulationProofs
from tests.support import free_port, settings_env, wait_until
from tests.support.ledger import assert_counters_match_history, assert_decided_as_the_log_says, decided_count
from tests.support.processes import Api, Processes

CROWD = [sys.executable, "-m", "crowd"]


def _intake(engine: Engine, campaign_id: int) -> tuple[int, int, int]:
    c = campaign_intake_second.c
    with engine.connect() as conn:
        row = conn.execute(
            select(func.sum(c.accepted), func.sum(c.unavailable), func.sum(c.limited)).where(
                c.campaign_id == campaign_id
            )
        ).one()
    return int(row[0] or 0), int(row[1] or 0), int(row[2] or 0)


def _seconds_total(engine: Engine, run_id: int) -> dict[str, int]:
    s = crowd_run_second.c
    with engine.connect() as conn:
        row = conn.execute(
            select(func.sum(s.sent), func.sum(s.accepted), func.sum(s.refused), func.sum(s.failed), func.count()).where(
                s.run_id == run_id
            )
        ).one()
    return dict(zip(("sent", "accepted", "refused", "failed", "seconds"), (int(v or 0) for v in row), strict=True))


def _run_of(engine: Engine, campaign_id: int) -> Any:
    with engine.connect() as conn:
        return conn.execute(select(crowd_run).where(crowd_run.c.campaign_id == campaign_id)).one()


def test_a_storm_through_the_door_is_counted_by_the_crowd_the_door_and_the_worker_alike(
    settings: Settings, processes: Processes, database: Engine
) -> None:
    api = processes.api(settings, workers=2)
    campaign_id = api.create_campaign(total_stock=300, name="crowd storm")
    processes.worker(settings)
    crowd = processes.start(
        "crowd",
        [
            *CROWD,
            "--campaign",
            str(campaign_id),
            "--users",
            "3000",
            "--seconds",
            "3",
            "--repeat-share",
            "0.2",
            "--shape",
            "rush",
            "--connections",
            "50",
            "--target",
            api.base_url,
            "--seed",
            "7",
        ],
        settings_env(settings),
    )
    assert crowd.wait(60) == 0, crowd.log()
    run = _run_of(database, campaign_id)
    assert (run.status, run.users, run.planned) == ("FINISHED", 3000, 3750), crowd.log()
    assert run.sent == run.accepted == 3750 and run.refused == run.failed == 0
    assert json.loads(run.answers) == {"202": 3750}
    assert run.p50_ms is not None and 0 < run.p50_ms <= run.p95_ms <= run.p99_ms <= run.max_ms
    per_second = _seconds_total(database, run.id)
    assert {k: per_second[k] for k in ("sent", "accepted", "refused", "failed")} == {
        "sent": 3750,
        "accepted": 3750,
        "refused": 0,
        "failed": 0,
    }
    # reported while it ran, not only at the end: rows in at least 2 wall-clock seconds (3 reports over ~3 s,
    # two of which may fall in one second and add up)
    assert per_second["seconds"] >= 2
    assert "from 50 source address(es)" in crowd.log()  # a crowd of addresses, not one client
    # the door counted what the crowd counted, and the worker decided every accepted request, once
    wait_until(lambda: _intake(database, campaign_id)[0] == 3750, 10, "the door's counts to be flushed")
    h = participation_history.c
    wait_until(lambda: decided_count(database, campaign_id) == 3750, 60, "every accepted request to be decided")
    with database.connect() as conn:
        users = conn.execute(select(func.count(h.user_id.distinct())).where(h.campaign_id == campaign_id)).scalar_one()
    assert users == 3000
    counts = assert_counters_match_history(database, campaign_id)
    assert counts == {"SUCCESS": 300, "FAIL": 2700, "DUPLICATE": 750}
    assert assert_decided_as_the_log_says(settings, database, campaign_id, 300) == 3750


def test_users_who_wait_learn_the_outcome_the_worker_recorded(
    settings: Settings, processes: Processes, database: Engine
) -> None:
    """Half the users wait for their outcome after the 202 (held look-ups): the crowd's tally of what they learned
    is the history's own for the requests of those users, and it reports the time from click to outcome."""
    api = processes.api(settings)
    campaign_id = api.create_campaign(total_stock=50, name="crowd that waits")
    processes.worker(settings)
    arguments = ["--campaign", str(campaign_id), "--users", "600", "--seconds", "2", "--repeat-share", "0"]
    crowd = processes.start(
        "crowd",
        [*CROWD, *arguments, "--wait-share", "0.5", "--connections", "50", "--target", api.base_url, "--seed", "3"],
        settings_env(settings),
    )
    assert crowd.wait(120) == 0, crowd.log()
    run = _run_of(database, campaign_id)
    assert run.status == "FINISHED" and run.accepted == 600 and run.wait_share == 0.5
    learned = json.loads(run.outcomes)
    h = participation_history.c
    with database.connect() as conn:
        rows = conn.execute(select(h.user_id, h.status).where(h.campaign_id == campaign_id)).all()
    waiting = Crowd(Door("", 202, SimulationProofs("k")), [], 1, Tally(), wait_share=0.5)
    recorded = Counter(r.status.value for r in rows if waiting.waits(r.user_id))
    assert learned == dict(recorded) and 200 < sum(learned.values()) < 400, (learned, recorded)
    assert 0 < run.outcome_p50_ms <= run.outcome_p95_ms <= run.outcome_p99_ms <= run.outcome_max_ms
    assert "users waited for their outcome" in crowd.log()


def test_refusals_are_counted_by_status_and_error_code(
    settings: Settings, processes: Processes, database: Engine
) -> None:
    """Four addresses against a door that allows each 10 requests/s (burst 10): the 429s are reported as
    such, and their count is the door's own."""
    api = processes.api(settings, PARTICIPATION_RATE_LIMIT="10", PARTICIPATION_RATE_BURST="10")
    campaign_id = api.create_campaign(total_stock=10, name="crowd limited")
    crowd = processes.start(
        "crowd",
        [
            *CROWD,
            "--campaign",
            str(campaign_id),
            "--users",
            "400",
            "--seconds",
            "1",
            "--repeat-share",
            "0",
            "--connections",
            "4",
            "--target",
            api.base_url,
        ],
        settings_env(settings),
    )
    assert crowd.wait(60) == 0, crowd.log()
    run = _run_of(database, campaign_id)
    answers = json.loads(run.answers)
    assert set(answers) == {"202", "429 RATE_LIMITED"}, answers
    assert answers["202"] == run.accepted and answers["429 RATE_LIMITED"] == run.refused
    assert run.accepted + run.refused == run.sent == 400 and run.failed == 0
    wait_until(
        lambda: _intake(database, campaign_id) == (run.accepted, 0, run.refused), 10, "the door's counts to match"
    )
    # each address: its burst at once, then 10/s for as long as the door saw requests, however long that was
    c = campaign_intake_second.c
    with database.connect() as conn:
        first, last = conn.execute(
            select(func.min(c.second), func.max(c.second)).where(c.campaign_id == campaign_id)
        ).one()
    span_s = (last - first).total_seconds() + 1
    assert 4 * 10 <= run.accepted <= 4 * (10 + 10 * span_s), (run.accepted, span_s)


def test_started_followed_and_stopped_from_the_admin_api(
    settings: Settings, processes: Processes, database: Engine
) -> None:
    """One crowd at a time; the Stop button's call stops it within seconds, its process gone; the run's
    figures grow while it runs."""
    api = _api_with_crowd(settings, processes)
    campaign_id = api.create_campaign(total_stock=100, name="crowd stopped")
    env = settings_env(settings)
    with api.client(admin=True) as client:
        r = client.post("/api/admin/crowd", json={"campaignId": campaign_id, "users": 50_000, "seconds": 100})
        assert r.status_code == 202, r.text
        run = r.json()["data"]
        assert (run["status"], run["planned"], run["sent"]) == ("STARTING", 55_556, 0)
        run_id = run["runId"]

        def figures() -> dict[str, Any]:
            data: dict[str, Any] = client.get(f"/api/admin/crowd/{run_id}").json()["data"]
            return data

        first = wait_until(lambda: (f := figures())["status"] == "RUNNING" and f["sent"] > 0 and f, 20, "the crowd")
        again = client.post("/api/admin/crowd", json={"campaignId": campaign_id})
        assert (again.status_code, again.json()["errorCode"]) == (409, "CROWD_RUNNING")
        cli = processes.start("crowd", [*CROWD, "--campaign", str(campaign_id), "--target", api.base_url], env)
        assert cli.wait(30) == 3 and "one crowd at a time" in cli.log(), cli.log()  # the CLI asks the same lock
        later = wait_until(lambda: (f := figures())["sent"] > first["sent"] and f["perSecond"] and f, 10, "more")
        assert later["accepted"] > 0 and later["p95Ms"] is not None
        assert later["perSecond"][0]["sent"] > 0 and later["answers"]["202"] == later["accepted"]

        stop = client.post(f"/api/admin/crowd/{run_id}/stop")
        assert stop.status_code == 202 and stop.json()["data"]["stopRequested"] is True
        stopped = wait_until(lambda: (f := figures())["status"] == "STOPPED" and f, 20, "the crowd to stop")
        assert stopped["sent"] < 20_000 and stopped["sent"] == stopped["accepted"] and stopped["endedAt"]
        pid = _pid(database, run_id)
        wait_until(lambda: not _alive(pid), 10, "the crowd's process to exit")
        # what the crowd says against the log itself (the test's own topic): every 202 is a message, and
        # nothing more arrives once it stopped
        in_log = sum(end_offsets(settings).values())
        assert in_log == stopped["accepted"], (in_log, stopped)
        time.sleep(1.5)
        assert sum(end_offsets(settings).values()) == in_log  # nothing sent after it stopped
        assert figures()["sent"] == stopped["sent"]

        again = client.post(f"/api/admin/crowd/{run_id}/stop")
        assert (again.status_code, again.json()["errorCode"]) == (409, "CROWD_NOT_RUNNING")
        listed = client.get("/api/admin/crowd", params={"limit": 5}).json()["data"]
        assert listed[0]["runId"] == run_id and "perSecond" not in listed[0]
        for wrong, code in (
            ({"campaignId": 10**12}, 404),
            ({"campaignId": campaign_id, "users": 100_001}, 422),
            ({"campaignId": campaign_id, "seconds": 601}, 422),
            ({"campaignId": campaign_id, "seconds": 0}, 422),
            ({"campaignId": campaign_id, "repeatShare": 0.6}, 422),
            ({"campaignId": campaign_id, "connections": 1001}, 422),
            ({"campaignId": campaign_id, "shape": "spiky"}, 422),
        ):
            assert client.post("/api/admin/crowd", json=wrong).status_code == code, wrong
        assert client.get("/api/admin/crowd/999999999").json()["errorCode"] == "CROWD_RUN_NOT_FOUND"
    with httpx.Client(base_url=api.base_url) as anonymous:
        assert anonymous.post("/api/admin/crowd", json={"campaignId": campaign_id}).status_code == 401


def test_a_signal_stops_the_cli_crowd_cleanly(settings: Settings, processes: Processes, database: Engine) -> None:
    api = processes.api(settings)
    campaign_id = api.create_campaign(total_stock=10, name="crowd sigterm")
    crowd = processes.start(
        "crowd",
        [*CROWD, "--campaign", str(campaign_id), "--users", "10000", "--seconds", "60", "--target", api.base_url],
        settings_env(settings),
    )
    wait_until(lambda: "sent " in crowd.log(), 20, "the crowd to report")
    crowd.popen.send_signal(signal.SIGTERM)
    assert crowd.wait(20) == 0, crowd.log()
    run = _run_of(database, campaign_id)
    assert run.status == "STOPPED" and 0 < run.sent < run.planned and run.sent == run.accepted


def test_the_crowd_goes_to_this_machine_only_unless_allowed(settings: Settings, processes: Processes) -> None:
    remote = processes.api(settings, CROWD_TARGET_URL="http://192.0.2.1:8000")
    campaign_id = remote.create_campaign(total_stock=10, name="crowd remote")
    with remote.client(admin=True) as client:
        r = client.post("/api/admin/crowd", json={"campaignId": campaign_id})
        assert (r.status_code, r.json()["errorCode"]) == (409, "CROWD_TARGET_NOT_LOCAL")
        assert all(r["campaignId"] != campaign_id for r in client.get("/api/admin/crowd").json()["data"])
    crowd = processes.start(
        "crowd",
        [
            *CROWD,
            "--campaign",
            str(campaign_id),
            "--users",
            "10",
            "--seconds",
            "1",
            "--target",
            "http://192.0.2.1:8000",
        ],
        settings_env(settings),
    )
    assert crowd.wait(30) == 1
    assert "sends only to loopback unless CROWD_ALLOW_REMOTE=true" in crowd.log()
    bounded = processes.start(
        "crowd", [*CROWD, "--campaign", str(campaign_id), "--users", "100001"], settings_env(settings)
    )
    assert bounded.wait(30) == 2 and "users: from 1 to 100,000" in bounded.log()


def _api_with_crowd(settings: Settings, processes: Processes) -> Api:
    """An API whose crowd goes to its own door."""
    port = free_port()
    return processes.api_on(settings, port, CROWD_TARGET_URL=f"http://127.0.0.1:{port}")


def _pid(engine: Engine, run_id: int) -> int:
    row = get_run(engine, run_id)
    assert row is not None and row.pid
    return int(row.pid)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return not _zombie(pid)


def _zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] == "Z"
    except FileNotFoundError:
        return False
