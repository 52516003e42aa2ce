"""Bad input gets a 4xx with an errorCode and changes nothing; admin endpoints need the token."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import httpx
import pytest
from sqlalchemy import Engine

from fcfs.kafka import end_offsets
from fcfs.settings import Settings
from tests.support import ADMIN_TOKEN
from tests.support.ledger import history_counts
from tests.support.processes import Api, Processes

BAD_BODIES = [
    ("wrong type: string", {"userId": "123"}, 422, "VALIDATION_ERROR"),
    ("wrong type: float", {"userId": 1.5}, 422, "VALIDATION_ERROR"),
    ("wrong type: bool", {"userId": True}, 422, "VALIDATION_ERROR"),
    ("wrong type: list", {"userId": [1]}, 422, "VALIDATION_ERROR"),
    ("null", {"userId": None}, 422, "VALIDATION_ERROR"),
    ("missing field", {}, 422, "VALIDATION_ERROR"),
    ("unknown field", {"userId": 1, "admin": True}, 422, "VALIDATION_ERROR"),
    ("zero", {"userId": 0}, 422, "VALIDATION_ERROR"),
    ("negative", {"userId": -5}, 422, "VALIDATION_ERROR"),
    ("huge", {"userId": 10**30}, 422, "VALIDATION_ERROR"),
    ("past 2^53", {"userId": 2**53}, 422, "VALIDATION_ERROR"),
    ("not an object", [1, 2], 422, "VALIDATION_ERROR"),
]


@pytest.mark.parametrize(("path", "mode"), [("participation", "KAFKA"), ("participation-sync", "SYNC")])
def test_bad_bodies_are_refused_and_nothing_is_enqueued(
    api: Api, settings: Settings, database: Engine, path: str, mode: str
) -> None:
    campaign_id = api.create_campaign(total_stock=5, mode=mode)
    before = end_offsets(settings)
    with api.client() as client:
        for what, body, status, code in BAD_BODIES:
            r = client.post(f"/api/campaigns/{campaign_id}/{path}", json=body)
            assert (r.status_code, r.json()["errorCode"]) == (status, code), what
            assert r.json()["success"] is False
        raw = [
            (b'{"userId": 1', "INVALID_JSON", 400),
            (b"not json at all", "INVALID_JSON", 400),
            (b"", "VALIDATION_ERROR", 422),
        ]
        for content, code, status in raw:
            r = client.post(
                f"/api/campaigns/{campaign_id}/{path}", content=content, headers={"content-type": "application/json"}
            )
            assert (r.status_code, r.json()["errorCode"]) == (status, code), content
        r = client.post(
            f"/api/campaigns/{campaign_id}/{path}",
            content=b'{"userId": ' + b"1" * 20_000 + b"}",
            headers={"content-type": "application/json"},
        )
        assert (r.status_code, r.json()["errorCode"]) == (413, "PAYLOAD_TOO_LARGE")
        r = client.post(f"/api/campaigns/987654321/{path}", json={"userId": 1})
        assert (r.status_code, r.json()["errorCode"]) == (404, "CAMPAIGN_NOT_FOUND")
        for bad_id in ("abc", "0", "-1", "99999999999999999999999"):
            r = client.post(f"/api/campaigns/{bad_id}/{path}", json={"userId": 1})
            assert (r.status_code, r.json()["errorCode"]) == (422, "VALIDATION_ERROR"), bad_id
    assert end_offsets(settings) == before  # nothing enqueued
    assert sum(history_counts(database, campaign_id).values()) == 0  # nothing written
    assert api.status(campaign_id)["totalParticipation"] == 0


def test_oversized_chunked_body_is_refused(api: Api) -> None:
    campaign_id = api.create_campaign(total_stock=1)

    def chunks() -> Iterator[bytes]:
        yield b'{"userId": 1, "pad": "'
        for _ in range(40):
            yield b"x" * 1024
        yield b'"}'

    with api.client() as client:
        r = client.post(
            f"/api/campaigns/{campaign_id}/participation",
            content=chunks(),
            headers={"content-type": "application/json"},
        )
    assert (r.status_code, r.json()["errorCode"]) == (413, "PAYLOAD_TOO_LARGE")


def test_campaign_window_is_enforced(api: Api, settings: Settings) -> None:
    now = dt.datetime.now(dt.UTC)
    before = end_offsets(settings)
    with api.client() as client:
        for path, mode in (("participation", "KAFKA"), ("participation-sync", "SYNC")):
            later = api.create_campaign(5, startsAt=(now + dt.timedelta(hours=1)).isoformat(), mode=mode)
            start, end = (now - dt.timedelta(hours=2)).isoformat(), (now - dt.timedelta(hours=1)).isoformat()
            over = api.create_campaign(5, startsAt=start, endsAt=end, mode=mode)
            r = client.post(f"/api/campaigns/{later}/{path}", json={"userId": 1})
            assert (r.status_code, r.json()["errorCode"]) == (409, "CAMPAIGN_NOT_STARTED")
            r = client.post(f"/api/campaigns/{over}/{path}", json={"userId": 1})
            assert (r.status_code, r.json()["errorCode"]) == (409, "CAMPAIGN_ENDED")
            assert api.status(later)["status"] == "SCHEDULED"
            assert api.status(over)["status"] == "ENDED"
    assert end_offsets(settings) == before


def test_unknown_request_ids_are_not_found(api: Api) -> None:
    campaign_id = api.create_campaign(total_stock=1)
    other = api.create_campaign(total_stock=1)
    with api.client() as client:
        issued = client.post(f"/api/campaigns/{campaign_id}/participation", json={"userId": 9}).json()["data"]
        request_id = issued["requestId"]
        ok = client.get(f"/api/campaigns/{campaign_id}/participation/{request_id}")
        assert ok.status_code == 200 and ok.json()["data"]["status"] == "PENDING"
        forged = request_id[:-1] + ("A" if request_id[-1] != "A" else "B")
        # the same bytes spelled differently (the last payload character's 2 unused bits set): not an id we issued
        alphabet = "-0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz"
        body, signature = request_id.split(".")
        variant = f"{body[:-1]}{alphabet[alphabet.index(body[-1]) + 1]}.{signature}"
        for bad in (forged, variant, "nonsense", "x" * 64):
            r = client.get(f"/api/campaigns/{campaign_id}/participation/{bad}")
            assert (r.status_code, r.json()["errorCode"]) == (404, "REQUEST_NOT_FOUND"), bad
        r = client.get(f"/api/campaigns/{other}/participation/{request_id}")  # issued for another campaign
        assert (r.status_code, r.json()["errorCode"]) == (404, "REQUEST_NOT_FOUND")


ADMIN_CALLS = [
    ("POST", "/api/admin/campaigns", {"name": "x", "totalStock": 1}),
    ("GET", "/api/admin/campaigns", None),
    ("POST", "/api/admin/test/participate-bulk", {"count": 1, "campaignId": 1}),
]


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong"},
        {"Authorization": f"Basic {ADMIN_TOKEN}"},
        {"Authorization": f"Bearer {ADMIN_TOKEN}x"},
    ],
)
def test_admin_endpoints_need_the_token(api: Api, settings: Settings, headers: dict[str, str]) -> None:
    before = end_offsets(settings)
    with httpx.Client(base_url=api.base_url, headers=headers) as client:
        for method, path, body in ADMIN_CALLS:
            r = client.request(method, path, json=body)
            assert (r.status_code, r.json()["errorCode"]) == (401, "UNAUTHORIZED"), (method, path)
            assert ADMIN_TOKEN not in r.text
    assert end_offsets(settings) == before


def test_admin_input_is_validated(api: Api, settings: Settings) -> None:
    campaign_id = api.create_campaign(total_stock=1)
    before = end_offsets(settings)
    with api.client(admin=True) as client:
        for body in (
            {"name": "x", "totalStock": 0},
            {"name": "", "totalStock": 5},
            {"name": "  ", "totalStock": 5},
            {"name": "x", "totalStock": "5"},
            {"totalStock": 5},
            {"name": "x", "totalStock": 5, "startsAt": "2030-01-02T00:00:00Z", "endsAt": "2030-01-01T00:00:00Z"},
            {"name": "x", "totalStock": 5, "startsAt": "tomorrow"},
            {"name": "x", "totalStock": 5, "startsAt": "0001-01-01T00:00:00+01:00"},  # before year 1 in UTC
            {"name": "x", "totalStock": 5, "endsAt": "9999-12-31T23:00:00-05:00"},  # after year 9999 in UTC
            {"name": "x", "totalStock": 5, "startsAt": "1969-07-20T20:17:00Z"},
        ):
            r = client.post("/api/admin/campaigns", json=body)
            assert (r.status_code, r.json()["errorCode"]) == (422, "VALIDATION_ERROR"), body
        for body in (
            {"count": 0, "campaignId": campaign_id},
            {"count": 100_001, "campaignId": campaign_id},
            {"count": -1, "campaignId": campaign_id},
            {"count": 5},
            {"count": "5", "campaignId": campaign_id},
        ):
            r = client.post("/api/admin/test/participate-bulk", json=body)
            assert (r.status_code, r.json()["errorCode"]) == (422, "VALIDATION_ERROR"), body
        r = client.post("/api/admin/test/participate-bulk", json={"count": 5, "campaignId": 987654321})
        assert (r.status_code, r.json()["errorCode"]) == (404, "CAMPAIGN_NOT_FOUND")
    assert end_offsets(settings) == before


def test_the_bulk_load_is_bounded_by_bulk_max_count(settings: Settings, processes: Processes) -> None:
    """BULK_MAX_COUNT at a value of its own: one over is refused and enqueues nothing, exactly it is published."""
    api = processes.api(settings, BULK_MAX_COUNT="37")
    campaign_id = api.create_campaign(total_stock=5)
    before = sum(end_offsets(settings).values())
    with api.client(admin=True) as client:
        over = client.post("/api/admin/test/participate-bulk", json={"count": 38, "campaignId": campaign_id})
        assert (over.status_code, over.json()["errorCode"]) == (422, "VALIDATION_ERROR")
        assert over.json()["message"] == "count: must be at most 37"
        assert sum(end_offsets(settings).values()) == before
        at = client.post("/api/admin/test/participate-bulk", json={"count": 37, "campaignId": campaign_id})
        assert at.status_code == 202 and at.json()["data"]["requestCount"] == 37
    assert sum(end_offsets(settings).values()) == before + 37
