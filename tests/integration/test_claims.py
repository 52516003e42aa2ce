"""Winners who must claim, against the real stack (API, worker, releaser, Kafka, MariaDB): a win not claimed in
time is RELEASED and its unit goes to the earliest FAIL, in log order, or back to the stock when none is left; a
releaser killed with SIGKILL in the middle of a release leaves nothing half done, and the one started after it
releases nothing twice and promotes nobody twice. At every moment: winners ≤ stock, one win per user, and the
requests that ever won (SUCCESS or RELEASED) the earliest first requests in log order."""

from __future__ import annotations

import threading
import time
from typing import Any

import httpx
from sqlalchemy import Engine, text
from sqlalchemy.exc import OperationalError

from fcfs.settings import Settings
from tests.support import wait_until
from tests.support.ledger import assert_counters_match_history, campaign_row, decided_count, history_rows
from tests.support.processes import Api, Processes

CLAIM_S = 5  # long enough for the test to claim a promoted win on a busy machine


def _claim(api: Api, campaign_id: int, request_id: str, user: Any) -> httpx.Response:
    url = f"{api.base_url}/api/campaigns/{campaign_id}/participation/{request_id}/claim"
    return httpx.post(url, json={"userId": user}, timeout=30)


def _refusal(r: httpx.Response) -> tuple[int, str | None, Any]:
    body = r.json()
    return r.status_code, body["errorCode"], (body.get("data") or {}).get("status")


def _ever_won_first(engine: Engine, campaign_id: int) -> tuple[int, int | None, int | None]:
    """(winners now, the last offset that ever won, the first offset that FAILs), in one consistent read."""
    with engine.connect() as conn:
        row = conn.execute(
            text(
                "SELECT COALESCE(SUM(status = 'SUCCESS'), 0), MAX(CASE WHEN status IN ('SUCCESS', 'RELEASED') "
                "THEN kafka_offset END), MIN(CASE WHEN status = 'FAIL' THEN kafka_offset END) "
                "FROM participation_history WHERE campaign_id = :c"
            ),
            {"c": campaign_id},
        ).one()
    return int(row[0]), row[1], row[2]


def _claims(engine: Engine, campaign_id: int) -> list[Any]:
    with engine.connect() as conn:
        return list(
            conn.execute(
                text(
                    "SELECT c.*, h.status, h.kafka_offset FROM claim c JOIN participation_history h "
                    "ON h.id = c.history_id WHERE c.campaign_id = :c ORDER BY h.kafka_offset"
                ),
                {"c": campaign_id},
            ).all()
        )


def _assert_claims_agree_with_history(engine: Engine, campaign_id: int) -> list[Any]:
    """One claim row per win ever (SUCCESS or RELEASED), its state the history's: released ⇔ RELEASED."""
    claims = _claims(engine, campaign_id)
    won = [r for r in history_rows(engine, campaign_id) if r.status.value in ("SUCCESS", "RELEASED")]
    assert sorted(c.history_id for c in claims) == sorted(r.id for r in won)
    for c in claims:
        assert (c.released_at is not None) == (c.status == "RELEASED"), c
        assert c.claimed_at is None or c.released_at is None
    return claims


def _campaign_locked(engine: Engine, campaign_id: int) -> bool:
    """Whether a transaction holds the campaign's row lock now (the worker and the API are idle meanwhile: the
    releaser's, which holds it from its first read to its commit)."""
    with engine.connect() as conn:
        try:
            conn.execute(text("SELECT id FROM campaign WHERE id = :c FOR UPDATE NOWAIT"), {"c": campaign_id})
        except OperationalError:  # (lock wait: NOWAIT refuses at once)
            return True
        finally:
            conn.rollback()
    return False


class Sampler(threading.Thread):
    """Reads the campaign again and again while releases go on: every sample must keep the invariants."""

    def __init__(self, engine: Engine, campaign_id: int, stock: int) -> None:
        super().__init__(daemon=True)
        self.engine, self.campaign_id, self.stock = engine, campaign_id, stock
        self.samples = 0
        self.broken: list[tuple[int, int | None, int | None]] = []
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            winners, last_won, first_fail = _ever_won_first(self.engine, self.campaign_id)
            if winners > self.stock or (last_won is not None and first_fail is not None and last_won > first_fail):
                self.broken.append((winners, last_won, first_fail))
            self.samples += 1
            time.sleep(0.02)


def test_a_win_not_claimed_in_time_goes_to_the_next_in_line_and_claims_keep_their_rules(
    settings: Settings, database: Engine, processes: Processes
) -> None:
    """Stock 3, claimSeconds 5, users 1–8 in order (user 1 twice). User 1 claims; 2 and 3 do not: both released,
    4 and 5 promoted with windows of their own; 4 claims, 5 does not (6 promoted), nor do 6, 7, 8 — the last unit
    goes back to the stock and the next arrival wins it. The claim's rules: only one's own request, only a win,
    only in time, the same answer twice; bad ids and bodies refused."""
    api = processes.api(settings)
    campaign_id = api.create_campaign(total_stock=3, claimSeconds=CLAIM_S)
    assert api.status(campaign_id)["releasedCount"] == 0
    processes.worker(settings)
    releaser = processes.releaser(settings, "--interval", "0.2")
    tickets = {user: api.take_part(campaign_id, user) for user in range(1, 9)}
    again = api.take_part(campaign_id, 1)
    first = api.look_up(campaign_id, tickets[1], wait_s=30)
    assert first["status"] == "SUCCESS" and first["claim"]["state"] == "UNCLAIMED", first
    assert first["claim"]["deadline"].endswith("Z")

    claimed = _claim(api, campaign_id, tickets[1]["requestId"], 1)
    assert claimed.status_code == 200, claimed.text
    assert claimed.json()["data"]["claim"]["state"] == "CLAIMED" and claimed.json()["message"] == "claimed"
    twice = _claim(api, campaign_id, tickets[1]["requestId"], 1)
    assert twice.status_code == 200 and twice.json()["message"] == "claimed already"
    assert twice.json()["data"]["claim"] == claimed.json()["data"]["claim"]
    assert _refusal(_claim(api, campaign_id, tickets[2]["requestId"], 1))[:2] == (403, "NOT_YOUR_REQUEST")
    assert api.look_up(campaign_id, tickets[8], wait_s=30)["status"] == "FAIL"
    assert _refusal(_claim(api, campaign_id, tickets[8]["requestId"], 8)) == (409, "NOT_A_WINNER", "FAIL")
    assert api.look_up(campaign_id, again, wait_s=30)["status"] == "DUPLICATE"
    assert _refusal(_claim(api, campaign_id, again["requestId"], 1)) == (409, "NOT_A_WINNER", "DUPLICATE")
    made_up = tickets[1]["requestId"][:-4] + ("AAAA" if not tickets[1]["requestId"].endswith("AAAA") else "BBBB")
    assert _refusal(_claim(api, campaign_id, made_up, 1))[:2] == (404, "REQUEST_NOT_FOUND")
    for bad in ("1", -1, 2**70, None, [1]):
        assert _claim(api, campaign_id, tickets[1]["requestId"], bad).status_code == 422, bad
    assert _claim(api, campaign_id, "x" * 65, 1).status_code == 422

    def status_of(user: int) -> dict[str, Any]:
        return api.look_up(campaign_id, tickets[user])

    four = wait_until(lambda: (s := status_of(4))["status"] == "SUCCESS" and s, 3 * CLAIM_S + 10, "4 promoted")
    assert four["promoted"] is True and four["claim"]["state"] == "UNCLAIMED", four
    assert _claim(api, campaign_id, tickets[4]["requestId"], 4).json()["data"]["promoted"] is True
    released = status_of(2)
    assert released["status"] == "RELEASED" and released["claim"]["state"] == "RELEASED", released
    assert _refusal(_claim(api, campaign_id, tickets[2]["requestId"], 2)) == (409, "CLAIM_EXPIRED", "RELEASED")
    assert status_of(3)["status"] == "RELEASED" and status_of(5)["promoted"] is True
    with api.client(admin=True) as admin:  # promoted winners are listed though decided after the sell-out
        listed = admin.get(f"/api/admin/campaigns/{campaign_id}/winners").json()["data"]["winners"]
        exported = admin.get(f"/api/admin/campaigns/{campaign_id}/winners.csv").text.splitlines()
    assert [(w["userId"], w["claimedAt"] is not None) for w in listed] == [(1, True), (4, True), (5, False)]
    assert exported[0].endswith(",claimedAt,promoted") and [line.split(",")[1] for line in exported[1:]] == [
        "1",
        "4",
        "5",
    ]

    # 5, 6, 7 and 8 released in turn (each promoted first), then the unit goes back to the stock
    wait_until(lambda: campaign_row(database, campaign_id).current_stock == 1, 6 * CLAIM_S + 15, "the unit back")
    expected = ["SUCCESS", "RELEASED", "RELEASED", "SUCCESS", "RELEASED", "RELEASED", "RELEASED", "RELEASED"]
    # (each API process learns a change within a feed round: DECISION_FEED_INTERVAL_S, a second when idle)
    wait_until(lambda: [status_of(u)["status"] for u in range(1, 9)] == expected, 5, "the look-ups follow")
    assert [status_of(u)["claim"]["state"] for u in (1, 4)] == ["CLAIMED", "CLAIMED"]
    late = api.take_part(campaign_id, 9)
    won = api.look_up(campaign_id, late, wait_s=30)
    assert won["status"] == "SUCCESS" and won["promoted"] is False and won["claim"]["state"] == "UNCLAIMED"

    counts = assert_counters_match_history(database, campaign_id)
    assert counts == {"SUCCESS": 3, "FAIL": 0, "DUPLICATE": 1, "RELEASED": 6}
    claims = _assert_claims_agree_with_history(database, campaign_id)
    assert [c.user_id for c in claims] == [1, 2, 3, 4, 5, 6, 7, 8, 9]
    assert [bool(c.promoted) for c in claims] == [False] * 3 + [True] * 5 + [False]
    assert all(c.deadline > c.won_at for c in claims)
    promoted_at = [c.won_at for c in claims if c.promoted]
    assert promoted_at == sorted(promoted_at)  # promotions in log order
    fresh = processes.api(settings)  # a process that never followed it: from the database, the same answers
    assert [fresh.look_up(campaign_id, tickets[u])["status"] for u in (1, 2, 4)] == ["SUCCESS", "RELEASED", "SUCCESS"]
    assert api.status(campaign_id)["releasedCount"] == 6
    assert releaser.popen.poll() is None


def test_a_releaser_killed_mid_release_leaves_nothing_half_done_and_its_successor_releases_nothing_twice(
    settings: Settings, database: Engine, processes: Processes
) -> None:
    """Stock 50, claimSeconds 1, 300 users, nobody claims: the wins are released 50 at a time down the whole line.
    The releaser holds each transaction open 300 ms mid-release (between the release and the promotion) and is
    killed with SIGKILL while one is open, once 100 wins are released. What committed is whole; a new releaser
    goes on from there. In the end every request was won once and released once (one claim row each), 250
    promoted in log order, the 50 units back in the stock — and no sample in between saw more winners than stock
    or a FAIL before a win."""
    api = processes.api(settings)
    campaign_id = api.create_campaign(total_stock=50, claimSeconds=1)
    with api.client(admin=True) as admin:
        body = {"campaignId": campaign_id, "count": 300, "userIdStart": 1}
        assert admin.post("/api/admin/test/participate-bulk", json=body).status_code == 202
    assert processes.worker(settings, "--drain").wait(120) == 0
    assert decided_count(database, campaign_id) == 300
    sampler = Sampler(database, campaign_id, 50)
    sampler.start()
    releaser = processes.releaser(settings, "--interval", "0.1", "--chunk", "5", "--hold-ms", "300")

    def mid_release() -> bool:
        if campaign_row(database, campaign_id).released_count < 100:
            return False
        return _campaign_locked(database, campaign_id)  # its transaction open: held between release and promotion

    wait_until(mid_release, 120, "the releaser mid-release", interval_s=0.01)
    releaser.kill()
    wait_until(lambda: not _campaign_locked(database, campaign_id), 30, "the killed transaction rolled back")
    at_kill = campaign_row(database, campaign_id)
    assert at_kill.released_count % 5 == 0  # whole chunks only
    assert_counters_match_history(database, campaign_id)
    _assert_claims_agree_with_history(database, campaign_id)
    assert at_kill.success_count == 50  # every released unit promoted with its release (FAILs were left)

    processes.releaser(settings, "--interval", "0.1", "--chunk", "5")
    wait_until(lambda: campaign_row(database, campaign_id).current_stock == 50, 120, "the whole line released")
    sampler.done.set()
    sampler.join(5)
    assert sampler.samples > 20 and not sampler.broken, sampler.broken
    counts = assert_counters_match_history(database, campaign_id)
    assert counts == {"SUCCESS": 0, "FAIL": 0, "DUPLICATE": 0, "RELEASED": 300}
    claims = _assert_claims_agree_with_history(database, campaign_id)
    assert len(claims) == 300 and all(c.released_at is not None for c in claims)  # each won once, released once
    assert [bool(c.promoted) for c in claims] == [False] * 50 + [True] * 250
    won_at = [c.won_at for c in claims]
    assert won_at == sorted(won_at)  # promoted in log order
    assert all(c.released_at >= c.deadline for c in claims)
    row = campaign_row(database, campaign_id)
    assert row.released_count == 300 and row.sold_out_at is None
