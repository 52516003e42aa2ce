"""Switches during the event against the real stack: pause and resume the doors, end now, move the end — refused
with nothing enqueued in every API process within CAMPAIGN_REFRESH_S, recorded with who, when and what, marked on
the timeline; what was accepted before a switch is decided as usual."""

from __future__ import annotations

import datetime as dt
from typing import Any

import httpx
from sqlalchemy import Engine, func, select

from fcfs.kafka import end_offsets
from fcfs.schema import campaign_switch, participation_history
from fcfs.settings import Settings
from tests.support import ADMIN_TOKEN, wait_until
from tests.support.ledger import assert_counters_match_history, campaign_row, decided_count, history_rows
from tests.support.processes import Api, Processes

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def _take_part(api: Api, campaign_id: int, user: int, path: str = "participation") -> httpx.Response:
    return httpx.post(f"{api.base_url}/api/campaigns/{campaign_id}/{path}", json={"userId": user}, timeout=30)


def _switch(api: Api, campaign_id: int, action: str, **headers: str) -> httpx.Response:
    url = f"{api.base_url}/api/admin/campaigns/{campaign_id}/{action}"
    return httpx.post(url, headers={**ADMIN, **headers}, timeout=30)


def _move_end(api: Api, campaign_id: int, body: Any) -> httpx.Response:
    url = f"{api.base_url}/api/admin/campaigns/{campaign_id}"
    return httpx.patch(url, json=body, headers=ADMIN, timeout=30)


def _log(api: Api, campaign_id: int) -> list[dict[str, Any]]:
    r = httpx.get(f"{api.base_url}/api/admin/campaigns/{campaign_id}/switches", headers=ADMIN, timeout=30)
    assert r.status_code == 200, r.text
    return list(r.json()["data"])


def _refusal(r: httpx.Response) -> tuple[int, str | None]:
    return r.status_code, r.json()["errorCode"]


def test_a_paused_campaign_refuses_in_every_process_with_nothing_enqueued_and_resumes(
    settings: Settings, database: Engine, processes: Processes
) -> None:
    """Two API servers: the switch is made through the first; the second, which has the campaign cached, refuses
    within CAMPAIGN_REFRESH_S (read from the switch log). While paused, nothing reaches the topic; after the
    resume both take part again, and every 202 — before and after — is decided."""
    first, second = processes.api(settings), processes.api(settings)
    campaign_id = first.create_campaign(total_stock=3)
    accepted = [_take_part(second, campaign_id, user) for user in (1, 2)]  # the second caches the window
    assert [r.status_code for r in accepted] == [202, 202]

    r = _switch(first, campaign_id, "pause", **{"X-Operator": "alice"})
    assert r.status_code == 200 and r.json()["data"]["paused"] is True, r.text
    refused = _take_part(first, campaign_id, 3)  # the process that made the switch: at once
    assert _refusal(refused) == (409, "CAMPAIGN_PAUSED") and refused.headers["retry-after"]
    answers: list[int] = []  # the second process's answers until it knows: 202s (each decided), then a 409

    def second_refuses() -> bool:
        answers.append(_take_part(second, campaign_id, 4).status_code)
        return answers[-1] == 409

    wait_until(second_refuses, 10, "the second process paused")
    assert set(answers) <= {202, 409}
    before = end_offsets(settings)
    for api in (first, second):
        for user in range(10, 30):
            assert _refusal(_take_part(api, campaign_id, user)) == (409, "CAMPAIGN_PAUSED")
    with first.client(admin=True) as admin:
        bulk = admin.post("/api/admin/test/participate-bulk", json={"campaignId": campaign_id, "count": 100})
    assert _refusal(bulk) == (409, "CAMPAIGN_PAUSED")
    assert end_offsets(settings) == before  # nothing enqueued while paused
    again = _switch(first, campaign_id, "pause")
    assert again.status_code == 200 and again.json()["message"] == "already paused"
    assert first.status(campaign_id)["paused"] is True

    assert _switch(second, campaign_id, "resume").json()["data"]["paused"] is False  # through the other process
    wait_until(lambda: _take_part(first, campaign_id, 40).status_code == 202, 10, "the first process resumed")
    assert _take_part(second, campaign_id, 41).status_code == 202

    log = _log(first, campaign_id)
    assert [(s["action"], s["actor"], s["address"]) for s in log] == [
        ("PAUSE", "alice", "127.0.0.1"),
        ("RESUME", "admin API", "127.0.0.1"),
    ]
    assert log[0]["ts"] <= log[1]["ts"]
    with first.client() as client:
        timeline = client.get(f"/api/campaigns/{campaign_id}/timeline").json()["data"]
    assert [(s["ts"], s["action"]) for s in timeline["switches"]] == [(s["ts"], s["action"]) for s in log]
    assert "actor" not in timeline["switches"][0]  # who switched is on the operators' plane only

    assert processes.worker(settings, "--drain").wait(60) == 0
    with database.connect() as conn:
        decided = conn.scalar(
            select(func.count())
            .select_from(participation_history)
            .where(participation_history.c.campaign_id == campaign_id)
        )
    # users 1, 2 before the pause, user 4 while the second process did not know yet, 40 and 41 after it: each
    # 202 decided once, nothing refused among them
    assert decided == 2 + answers.count(202) + 2


def test_ending_now_and_moving_the_end_switch_the_doors_and_bad_switches_change_nothing(
    settings: Settings, database: Engine, processes: Processes
) -> None:
    api = processes.api(settings)
    campaign_id = api.create_campaign(total_stock=5)
    sync_id = api.create_campaign(total_stock=5, mode="SYNC")
    for cid, path in ((campaign_id, "participation"), (sync_id, "participation-sync")):
        assert _take_part(api, cid, 1, path).status_code in (200, 202)
        assert _switch(api, cid, "end").json()["data"]["status"] == "ENDED"
        assert _refusal(_take_part(api, cid, 2, path)) == (409, "CAMPAIGN_ENDED")
    assert _switch(api, campaign_id, "end").json()["message"] == "already ended"
    # the sync door reads the pause in the decision's own transaction
    later = (dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)).isoformat()
    assert _move_end(api, sync_id, {"endsAt": later}).status_code == 200
    _switch(api, sync_id, "pause")
    assert _refusal(_take_part(api, sync_id, 3, "participation-sync")) == (409, "CAMPAIGN_PAUSED")
    _switch(api, sync_id, "resume")
    assert _take_part(api, sync_id, 3, "participation-sync").status_code == 200

    r = _move_end(api, campaign_id, {"endsAt": later})
    assert r.status_code == 200 and r.json()["data"]["status"] == "OPEN", r.text
    assert _take_part(api, campaign_id, 4).status_code == 202
    assert _move_end(api, campaign_id, {"endsAt": None}).json()["data"]["endsAt"] is None

    held = api.create_campaign(total_stock=1, paused=True)  # created paused: opened by a resume
    assert _refusal(_take_part(api, held, 1)) == (409, "CAMPAIGN_PAUSED")
    assert _switch(api, held, "resume").json()["data"]["paused"] is False
    assert _take_part(api, held, 1).status_code == 202
    assert [s["action"] for s in _log(api, held)] == ["RESUME"]

    scheduled = api.create_campaign(total_stock=5, startsAt=later)
    assert _switch(api, scheduled, "end").json()["data"]["status"] == "ENDED"  # ended before it opened

    with database.connect() as conn:
        recorded = conn.scalar(select(func.count()).select_from(campaign_switch))
    bad: list[tuple[httpx.Response, int, str]] = [
        (_move_end(api, campaign_id, {"endsAt": "yesterday"}), 422, "VALIDATION_ERROR"),
        (_move_end(api, campaign_id, {"endsAt": later, "stock": 5}), 422, "VALIDATION_ERROR"),
        (_move_end(api, campaign_id, {}), 422, "VALIDATION_ERROR"),
        (_move_end(api, campaign_id, {"endsAt": "9999-12-31T12:00:00Z"}), 422, "VALIDATION_ERROR"),
        (_move_end(api, scheduled, {"endsAt": "2020-01-01T00:00:00Z"}), 422, "VALIDATION_ERROR"),  # before its start
        (_switch(api, campaign_id, "pause", **{"X-Operator": "a\tb"}), 422, "VALIDATION_ERROR"),
        (_switch(api, campaign_id, "pause", **{"X-Operator": "x" * 65}), 422, "VALIDATION_ERROR"),
        (_switch(api, 987654321, "pause"), 404, "CAMPAIGN_NOT_FOUND"),
        (httpx.get(f"{api.base_url}/api/admin/campaigns/987654321/switches", headers=ADMIN), 404, "CAMPAIGN_NOT_FOUND"),
        (httpx.post(f"{api.base_url}/api/admin/campaigns/{campaign_id}/pause"), 401, "UNAUTHORIZED"),
    ]
    for r, status, code in bad:
        assert _refusal(r) == (status, code), r.text
    assert all(r.json()["data"]["errors"] for r, status, _ in bad if status == 422)
    with database.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(campaign_switch)) == recorded  # nothing recorded
    assert api.status(campaign_id)["paused"] is False
    actions = [s["action"] for s in _log(api, campaign_id)]
    assert actions == ["END", "MOVE_END", "MOVE_END"]


def _add_stock(api: Api, campaign_id: int, body: Any) -> httpx.Response:
    url = f"{api.base_url}/api/admin/campaigns/{campaign_id}/stock"
    return httpx.post(url, json=body, headers=ADMIN, timeout=30)


def _look_up(api: Api, ticket: dict[str, Any]) -> dict[str, Any]:
    url = f"{api.base_url}/api/campaigns/{ticket['campaignId']}/participation/{ticket['requestId']}"
    r = httpx.get(url, params={"partition": ticket["partition"], "offset": ticket["offset"]}, timeout=30)
    assert r.status_code == 200, r.text
    return dict(r.json()["data"])


def _winners_are_the_first_comers(database: Engine, campaign_id: int) -> list[Any]:
    """I1, I2, I3 with stock added: the campaign's winners are exactly its first `total_stock` users in log order
    (their first requests; a repeat is a DUPLICATE), and the counters match the history: returns the rows in log
    order."""
    counts = assert_counters_match_history(database, campaign_id)
    row = campaign_row(database, campaign_id)
    rows = history_rows(database, campaign_id)
    firsts = [r.id for r in rows if r.status.value != "DUPLICATE"]  # each user's first request (I3)
    winners = [r.id for r in rows if r.status.value == "SUCCESS"]
    assert counts["SUCCESS"] == len(winners) == min(row.total_stock, len(firsts))
    assert winners == firsts[: len(winners)]  # the first comers, none later
    return rows


def test_added_stock_goes_to_the_earliest_fails_first_then_to_new_arrivals(
    settings: Settings, database: Engine, processes: Processes
) -> None:
    api = processes.api(settings)
    campaign_id = api.create_campaign(total_stock=3)
    tickets = [_take_part(api, campaign_id, user).json()["data"] for user in range(1, 11)]
    assert processes.worker(settings, "--drain").wait(60) == 0
    assert [_look_up(api, t)["status"] for t in tickets] == ["SUCCESS"] * 3 + ["FAIL"] * 7  # answers kept now

    r = _add_stock(api, campaign_id, {"add": 2})
    assert r.status_code == 200, r.text
    assert r.json()["data"]["promoted"] == 2 and r.json()["data"]["campaign"]["totalStock"] == 5
    assert r.json()["data"]["campaign"]["currentStock"] == 0
    # the look-ups learn it: users 4 and 5 won, promoted; 6 on still lost
    wait_until(lambda: _look_up(api, tickets[4])["status"] == "SUCCESS", 10, "the promotion looked up")
    answers = [_look_up(api, t) for t in tickets]
    assert [(a["status"], a["promoted"]) for a in answers] == [("SUCCESS", False)] * 3 + [("SUCCESS", True)] * 2 + [
        ("FAIL", False)
    ] * 5
    _winners_are_the_first_comers(database, campaign_id)

    r = _add_stock(api, campaign_id, {"add": 10})  # more than the FAILs left: the rest for new arrivals
    assert r.json()["data"]["promoted"] == 5 and r.json()["data"]["campaign"]["currentStock"] == 5
    later = [_take_part(api, campaign_id, user).json()["data"] for user in (11, 12, 1)]  # user 1 again: DUPLICATE
    assert processes.worker(settings, "--drain").wait(60) == 0
    assert [_look_up(api, t)["status"] for t in later] == ["SUCCESS", "SUCCESS", "DUPLICATE"]
    rows = _winners_are_the_first_comers(database, campaign_id)
    assert [r.user_id for r in rows if r.promoted_at is not None] == list(range(4, 11))  # in decision order
    assert campaign_row(database, campaign_id).current_stock == 3
    log = _log(api, campaign_id)
    assert [(s["action"], s["stockAdded"], s["promoted"]) for s in log] == [("ADD_STOCK", 2, 2), ("ADD_STOCK", 10, 5)]

    before = campaign_row(database, campaign_id)
    for body in ({"add": 0}, {"add": 100_001}, {"add": "5"}, {"add": 1.5}, {}, {"add": 1, "extra": 1}):
        assert _refusal(_add_stock(api, campaign_id, body)) == (422, "VALIDATION_ERROR"), body
    assert _refusal(_add_stock(api, 987654321, {"add": 1})) == (404, "CAMPAIGN_NOT_FOUND")
    assert campaign_row(database, campaign_id) == before  # nothing changed
    assert len(_log(api, campaign_id)) == 2


def test_stock_added_while_the_worker_decides_keeps_the_winners_the_first_comers(
    settings: Settings, database: Engine, processes: Processes
) -> None:
    """Stock added during a storm, whatever the worker has decided by then: the campaign's winners are its first
    `total_stock` users in log order — the earliest FAILs promoted, the rest to the next arrivals — and never more
    than the stock; in a synchronous campaign the earliest FAIL by decision."""
    api = processes.api(settings)
    campaign_id = api.create_campaign(total_stock=100)
    worker = processes.worker(settings)
    with api.client(admin=True) as admin:
        for start in (1, 3_001):
            body = {"campaignId": campaign_id, "count": 3_000, "userIdStart": start}
            assert admin.post("/api/admin/test/participate-bulk", json=body).status_code == 202
            if start == 1:
                wait_until(lambda: decided_count(database, campaign_id) >= 500, 60, "the worker deciding")
                for _ in range(5):  # in steps, while it goes on deciding
                    assert _add_stock(api, campaign_id, {"add": 100}).status_code == 200
    wait_until(lambda: decided_count(database, campaign_id) == 6_000, 120, "every request decided")
    worker.terminate()
    rows = _winners_are_the_first_comers(database, campaign_id)
    assert campaign_row(database, campaign_id).total_stock == 600 and len(rows) == 6_000

    sync_id = api.create_campaign(total_stock=1, mode="SYNC")
    assert [_take_part(api, sync_id, u, "participation-sync").json()["data"]["status"] for u in (1, 2, 3)] == [
        "SUCCESS",
        "FAIL",
        "FAIL",
    ]
    assert _add_stock(api, sync_id, {"add": 1}).json()["data"]["promoted"] == 1
    promoted = [r.user_id for r in history_rows(database, sync_id) if r.promoted_at is not None]
    assert promoted == [2]
    assert_counters_match_history(database, sync_id)
