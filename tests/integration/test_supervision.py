"""The README's run command supervises: a crashed process comes back, the others keep serving, Ctrl-C stops all."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import httpx
import psutil
from sqlalchemy import Engine

from fcfs.settings import Settings
from tests.support import (
    ADMIN_TOKEN,
    Api,
    Processes,
    assert_counters_match_history,
    free_port,
    settings_env,
    wait_until,
)


def test_a_worker_killed_under_up_sh_is_restarted_and_the_totals_stay_exact(
    settings: Settings, database: Engine, processes: Processes, tmp_path: Path
) -> None:
    api_port, ops_port, dashboard_port = free_port(), free_port(), free_port()
    env = settings_env(
        settings,
        ADMIN_TOKEN=ADMIN_TOKEN,
        API_PORT=str(api_port),
        API_WORKERS="1",
        OPS_PORT=str(ops_port),
        API_PLANE="public",  # as .env.example has it
        API_BASE_URL=f"http://127.0.0.1:{ops_port}",
        DASHBOARD_PORT=str(dashboard_port),
        RUN_DIR=str(tmp_path),
        WORKER_BATCH_SIZE="50",
    )
    up = processes.start("up", ["bash", "scripts/up.sh"], env, group=True)
    api = Api(f"http://127.0.0.1:{api_port}", up)  # the crowd's door
    ops = Api(f"http://127.0.0.1:{ops_port}", up)  # the operators' plane
    api.wait_live(180)  # the first run may install what is missing
    ops.wait_live(60)
    with api.client(admin=True) as client:  # no operator route at the door
        refused = client.post("/api/admin/campaigns", json={"name": "x", "totalStock": 1})
        assert (refused.status_code, refused.json()["errorCode"]) == (404, "NOT_FOUND")
    campaign_id = ops.create_campaign(total_stock=300)
    url = f"/api/campaigns/{campaign_id}/participation"

    def worker_pid() -> int | None:
        for child in psutil.Process(up.popen.pid).children(recursive=True):
            if child.cmdline()[-2:] == ["-m", "worker"]:
                return child.pid
        return None

    first = wait_until(worker_pid, 60, "the worker to start")
    accepted = 0
    with api.client() as client:
        for user in range(1, 401):
            accepted += client.post(url, json={"userId": user}).status_code == 202
        wait_until(lambda: api.status(campaign_id)["totalParticipation"] > 0, 60, "decisions")

        psutil.Process(first).send_signal(signal.SIGKILL)
        killed_at = time.monotonic()
        for user in range(401, 801):  # the API keeps answering while the worker is down
            accepted += client.post(url, json={"userId": user}).status_code == 202
        second = wait_until(lambda: (pid := worker_pid()) not in (None, first) and pid, 10, "a new worker")
        assert time.monotonic() - killed_at < 10
        assert client.get("/health/live").status_code == 200

    assert accepted == 800
    wait_until(lambda: api.status(campaign_id)["totalParticipation"] == 800, 60, "every request decided")
    assert assert_counters_match_history(database, campaign_id) == {"SUCCESS": 300, "FAIL": 500, "DUPLICATE": 0}
    assert psutil.pid_exists(second)

    # Ctrl-C stops everything
    children = psutil.Process(up.popen.pid).children(recursive=True)
    up.popen.send_signal(signal.SIGINT)
    assert up.wait(60) == 0, up.log()
    _, alive = psutil.wait_procs(children, timeout=10)
    assert not alive, [p.cmdline() for p in alive]
    assert "exited: worker (terminated by SIGKILL; not expected)" in up.log()
    try:
        httpx.get(f"{api.base_url}/health/live", timeout=1)
        raise AssertionError("the API still answers after Ctrl-C")
    except httpx.TransportError:
        pass
