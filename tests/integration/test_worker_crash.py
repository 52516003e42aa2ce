"""I4 across a kill -9: the worker dies mid-run, restarts, and the totals are exact."""

from __future__ import annotations

import time

from sqlalchemy import Engine

from fcfs.settings import Settings
from tests.support import wait_until
from tests.support.ledger import (
    assert_counters_match_history,
    assert_decided_as_the_log_says,
    history_counts,
    history_rows,
)
from tests.support.processes import Processes


def test_sigkill_mid_run_loses_nothing_and_counts_nothing_twice(
    settings: Settings, database: Engine, processes: Processes
) -> None:
    api = processes.api(settings)
    campaign_id = api.create_campaign(total_stock=7000)
    with api.client(admin=True) as client:
        # 15,000 users and 5,000 repeat clicks, the winners' among them (the stock goes to users 1..7,000):
        # users 1..5,000, then 1..2,500 again (all winners), 5,001..15,000, then 5,001..7,500 again
        for start, count in ((1, 5_000), (1, 2_500), (5_001, 10_000), (5_001, 2_500)):
            r = client.post(
                "/api/admin/test/participate-bulk",
                json={"campaignId": campaign_id, "count": count, "userIdStart": start},
            )
            assert r.status_code == 202, r.text

    # Small batches so the kill lands in the middle of the run, while winners' repeat clicks are decided.
    worker = processes.worker(settings, WORKER_BATCH_SIZE="200")
    decided_at_kill = wait_until(
        lambda: (n := sum(history_counts(database, campaign_id).values())) >= 6000 and n, 120, "the worker to start"
    )
    worker.kill()
    partial = sum(history_counts(database, campaign_id).values())
    assert partial < 20_000, "the worker finished before it could be killed"
    assert_counters_match_history(database, campaign_id)  # a killed batch left nothing half-written

    time.sleep(0.5)
    restarted = processes.worker(settings, "--drain")
    assert restarted.wait(180) == 0, restarted.log()

    rows = history_rows(database, campaign_id)
    assert len(rows) == 20_000  # nothing lost
    assert len({r.request_id for r in rows}) == 20_000  # nothing twice
    counts = assert_counters_match_history(database, campaign_id)
    assert counts == {"SUCCESS": 7000, "FAIL": 8000, "DUPLICATE": 5000}
    assert assert_decided_as_the_log_says(settings, database, campaign_id, 7000) == 20_000
    print(f"killed at {decided_at_kill} decided rows (observed {partial} after the kill)")
