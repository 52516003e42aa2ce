"""Simulated users are never real users: the crowd and the bulk load take part from a range of user ids the
door refuses to real clients (a body userId or a token's sub), and winners and look-ups say who was simulated."""

from __future__ import annotations

import csv
import io
import sys

from pydantic import SecretStr
from sqlalchemy import Engine

from fcfs.settings import Settings
from fcfs.simulated import FIRST_SIMULATED_USER, HEADER, SimulationProofs
from fcfs.tokens import mint
from tests.support import settings_env
from tests.support.ledger import history_rows
from tests.support.processes import Processes

SECRET = "simulated-users-test-secret-of-enough-length"


def test_the_door_refuses_simulated_ids_to_real_clients(settings: Settings, processes: Processes) -> None:
    api = processes.api(settings)
    campaign_id = api.create_campaign(total_stock=5)
    proofs = SimulationProofs(settings.request_id_secret.get_secret_value())
    with api.client() as client:
        for path in ("participation", "participation-sync"):
            target = api.create_campaign(total_stock=5, mode="SYNC") if path.endswith("sync") else campaign_id
            url = f"/api/campaigns/{target}/{path}"
            for user, headers in (
                (FIRST_SIMULATED_USER, {}),
                (FIRST_SIMULATED_USER + 7, {HEADER: "0" * 32}),  # a made-up proof
                (FIRST_SIMULATED_USER + 7, {HEADER: proofs.proof(FIRST_SIMULATED_USER + 8)}),  # another user's
            ):
                r = client.post(url, json={"userId": user}, headers=headers)
                assert (r.status_code, r.json()["errorCode"]) == (422, "VALIDATION_ERROR"), (path, r.text)
                assert r.json()["data"]["errors"][0]["field"] == "userId"
            assert client.post(url, json={"userId": FIRST_SIMULATED_USER - 1}).status_code in (200, 202)  # real
            simulated = FIRST_SIMULATED_USER + 9
            r = client.post(url, json={"userId": simulated}, headers={HEADER: proofs.proof(simulated)})
            assert r.status_code in (200, 202), r.text  # the simulator's own proof


def test_a_token_naming_a_simulated_user_is_refused(settings: Settings, processes: Processes) -> None:
    """USER_AUTH=jwt: a token's sub of the simulated range is no real user either (without the simulator's
    proof); a real user's token takes part."""
    jwt_settings = settings.model_copy(update={"user_auth": "jwt", "jwt_secret": SecretStr(SECRET)})
    api = processes.api(jwt_settings)
    campaign_id = api.create_campaign(total_stock=5)
    url = f"/api/campaigns/{campaign_id}/participation"
    with api.client() as client:
        for sub, status in ((FIRST_SIMULATED_USER + 1, 422), (12_345, 202)):
            r = client.post(url, json={}, headers={"Authorization": f"Bearer {mint(jwt_settings, sub)}"})
            assert r.status_code == status, r.text


def test_bulk_and_crowd_users_are_simulated_and_marked_so(
    settings: Settings, processes: Processes, database: Engine
) -> None:
    api = processes.api(settings)
    campaign_id = api.create_campaign(total_stock=30)
    with api.client(admin=True) as client:
        bulk = client.post(
            "/api/admin/test/participate-bulk", json={"campaignId": campaign_id, "count": 20, "userIdStart": 1}
        )
        assert bulk.status_code == 202 and bulk.json()["data"]["firstUserId"] == FIRST_SIMULATED_USER
        random_start = client.post("/api/admin/test/participate-bulk", json={"campaignId": campaign_id, "count": 5})
        assert random_start.json()["data"]["firstUserId"] >= FIRST_SIMULATED_USER
        with api.client() as door:
            assert door.post(f"/api/campaigns/{campaign_id}/participation", json={"userId": 42}).status_code == 202
    crowd = processes.start(
        "crowd",
        [
            sys.executable,
            "-m",
            "crowd",
            "--campaign",
            str(campaign_id),
            "--users",
            "20",
            "--seconds",
            "1",
            "--target",
            api.base_url,
        ],
        settings_env(settings),
    )
    assert crowd.wait(60) == 0, crowd.log()
    assert processes.worker(settings, "--drain").wait(60) == 0
    rows = history_rows(database, campaign_id)
    people = [r.user_id for r in rows if r.user_id < FIRST_SIMULATED_USER]
    assert people == [42] and len(rows) >= 46  # 20 + 5 bulk, the crowd's 20 (and its repeats), one person
    with api.client(admin=True) as client:
        winners = client.get(f"/api/admin/campaigns/{campaign_id}/winners", params={"limit": 100}).json()["data"]
        assert {w["simulated"] for w in winners["winners"] if w["userId"] != 42} == {True}
        assert [w["simulated"] for w in winners["winners"] if w["userId"] == 42] == [False]
        exported = list(csv.DictReader(io.StringIO(client.get(f"/api/admin/campaigns/{campaign_id}/winners.csv").text)))
        assert {(int(r["userId"]) == 42, r["simulated"]) for r in exported} == {(True, "false"), (False, "true")}
        looked = client.get(
            f"/api/admin/campaigns/{campaign_id}/participants", params={"userId": FIRST_SIMULATED_USER}
        ).json()["data"]
        assert looked["simulated"] is True and looked["requests"]
