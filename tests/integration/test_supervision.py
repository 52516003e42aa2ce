"""The README's run command: its quick start works as written, a crashed process comes back while the others
keep serving, Ctrl-C stops all."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

import httpx
import psutil
from sqlalchemy import Engine

from fcfs.settings import Settings
from tests.support import ADMIN_TOKEN, ROOT, free_port, settings_env, wait_until
from tests.support.ledger import assert_counters_match_history
from tests.support.processes import Api, Processes


def quick_start(api_port: int, ops_port: int) -> str:
    """The README's quick-start commands, aimed at this test's ports instead of 8000 and 8001."""
    section = (ROOT / "README.md").read_text().split("\n## Quick start\n", 1)[1]
    block = section.split("```bash\n", 1)[1].split("```", 1)[0]
    assert "localhost:8000" in block and "localhost:8001" in block
    return block.replace("localhost:8000", f"localhost:{api_port}").replace("localhost:8001", f"localhost:{ops_port}")


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

    # the README's quick start, as written, against the system as up.sh started it
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", quick_start(api_port, ops_port)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    bulk, looked_up, status = (json.loads(line) for line in done.stdout.splitlines())
    assert bulk["success"] and bulk["data"]["requestCount"] == 5000, bulk
    # held until the worker decided it (waitSeconds=30): user 123, first in the log, won
    assert looked_up["data"]["userId"] == 123 and looked_up["data"]["status"] == "SUCCESS", looked_up
    assert status["data"]["totalStock"] == 50, status
    first_campaign = looked_up["data"]["campaignId"]
    wait_until(lambda: api.status(first_campaign)["totalParticipation"] == 5001, 60, "the quick start decided")
    assert assert_counters_match_history(database, first_campaign) == {"SUCCESS": 50, "FAIL": 4951, "DUPLICATE": 0}
    with api.client() as client:  # user 123 came first
        lookup = client.get(f"/api/campaigns/{first_campaign}/participation/{looked_up['data']['requestId']}")
        assert lookup.json()["data"]["status"] == "SUCCESS"
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
