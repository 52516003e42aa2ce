"""After the event, on the real stack: the winners list (paged and as CSV) and the support look-up, each
checked against the Kafka log's order."""

from __future__ import annotations

import csv
import io
from typing import Any

import orjson
from sqlalchemy import Engine

from fcfs.kafka import read_topic
from fcfs.settings import Settings
from tests.support import signed
from tests.support.ledger import history_rows
from tests.support.processes import Api, Processes

STOCK = 30


def _take_part(api: Api, campaign_id: int, users: list[int]) -> None:
    with api.client() as client:
        for user in users:
            r = client.post(f"/api/campaigns/{campaign_id}/participation", json={"userId": user})
            assert r.status_code == 202, r.text


def _log(settings: Settings, campaign_id: int) -> list[dict[str, Any]]:
    """The campaign's requests in log order, each with the outcome the rule gives and the winners before it."""
    seen: set[int] = set()
    winners = 0
    out = []
    for message in read_topic(settings):
        event = orjson.loads(message.value() or b"{}")
        if event.get("campaignId") != campaign_id:
            continue
        user = event["userId"]
        status = "DUPLICATE" if user in seen else "SUCCESS" if winners < STOCK else "FAIL"
        out.append({**event, "status": status, "winnersBefore": winners, "offset": message.offset()})
        winners += status == "SUCCESS"
        seen.add(user)
    return out


def test_winners_are_listed_and_exported_in_decision_order_and_support_finds_every_request(
    settings: Settings, database: Engine, processes: Processes
) -> None:
    api = processes.api(settings)
    campaign_id = api.create_campaign(total_stock=STOCK)
    users = [*range(1, 11), 3, *range(11, 41), 7, 40, 35]  # 3 again mid-sale; 7, 40 and 35 again after it
    _take_part(api, campaign_id, users)
    assert processes.worker(settings, "--drain").wait(120) == 0
    log = _log(settings, campaign_id)
    assert len(log) == len(users) == len(history_rows(database, campaign_id))
    expected = [(e["userId"], e["requestId"], e["offset"]) for e in log if e["status"] == "SUCCESS"]
    assert len(expected) == STOCK

    with api.client(admin=True) as client:
        pages, cursor = [], None
        while True:
            params = {"limit": 7} | ({"cursor": cursor} if cursor else {})
            page = client.get(f"/api/admin/campaigns/{campaign_id}/winners", params=params).json()["data"]
            pages.append(page["winners"])
            cursor = page["nextCursor"]
            if cursor is None:
                break
        assert page["totalWinners"] == STOCK
        assert [len(p) for p in pages] == [7, 7, 7, 7, 2]
        listed = [w for p in pages for w in p]
        assert [w["position"] for w in listed] == list(range(1, STOCK + 1))
        assert [(w["userId"], w["requestId"], w["kafkaOffset"]) for w in listed] == expected
        assert not any(w["simulated"] for w in listed)  # people, not the simulator's users
        assert {w["kafkaPartition"] for w in listed} == {0}

        exported = client.get(f"/api/admin/campaigns/{campaign_id}/winners.csv")
        assert exported.status_code == 200 and exported.headers["content-type"].startswith("text/csv")
        assert f"campaign-{campaign_id}-winners.csv" in exported.headers["content-disposition"]
        rows = list(csv.DictReader(io.StringIO(exported.text)))
        # a spreadsheet would read "-…" as a formula: the id's cell starts with ' (one to strip)
        assert all(r["requestId"].startswith("'-") for r in rows), rows[:2]
        assert {r["simulated"] for r in rows} == {"false"}
        assert [(int(r["position"]), int(r["userId"]), r["requestId"][1:], r["decidedAt"]) for r in rows] == [
            (w["position"], w["userId"], w["requestId"], w["decidedAt"]) for w in listed
        ]

        bad = client.get(f"/api/admin/campaigns/{campaign_id}/winners", params={"cursor": "not-a-cursor"})
        assert (bad.status_code, bad.json()["errorCode"]) == (400, "BAD_CURSOR")
        assert client.get("/api/admin/campaigns/987654321/winners").json()["errorCode"] == "CAMPAIGN_NOT_FOUND"
        assert client.get("/api/admin/campaigns/987654321/winners.csv").status_code == 404

        for user in (3, 7, 40, 35, 12):
            answer = client.get(f"/api/admin/campaigns/{campaign_id}/participants", params={"userId": user})
            data = answer.json()["data"]
            mine = [e for e in log if e["userId"] == user]
            assert [(r["requestId"], r["status"], r["kafkaOffset"], r["winnersBefore"]) for r in data["requests"]] == [
                (e["requestId"], e["status"], e["offset"], e["winnersBefore"]) for e in mine
            ], user
            assert (data["totalStock"], data["winners"], data["undecided"]) == (STOCK, STOCK, [])
            by_id = client.get(
                f"/api/admin/campaigns/{campaign_id}/participants", params={"requestId": mine[-1]["requestId"]}
            ).json()["data"]
            assert by_id == data  # one of the user's ids finds all of them

        never_sent = signed(settings, campaign_id, 99_999).request_id  # issued, never published
        undecided = client.get(
            f"/api/admin/campaigns/{campaign_id}/participants", params={"requestId": never_sent}
        ).json()["data"]
        assert (undecided["userId"], undecided["requests"], undecided["undecided"]) == (99_999, [], [never_sent])
        forged = never_sent[:-1] + ("A" if never_sent[-1] != "A" else "B")
        refused = client.get(f"/api/admin/campaigns/{campaign_id}/participants", params={"requestId": forged})
        assert (refused.status_code, refused.json()["errorCode"]) == (404, "REQUEST_NOT_FOUND")
        wrong_params: list[dict[str, Any]] = [{}, {"userId": 1, "requestId": never_sent}, {"userId": 0}]
        for params in wrong_params:
            wrong = client.get(f"/api/admin/campaigns/{campaign_id}/participants", params=params)
            assert (wrong.status_code, wrong.json()["errorCode"]) == (422, "VALIDATION_ERROR"), params
