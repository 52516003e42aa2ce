"""Who may take part (USER_AUTH=jwt): the user is the bearer token's, on both paths, nothing else gets in."""

from __future__ import annotations

import subprocess
import sys
import time

import jwt
from pydantic import SecretStr
from sqlalchemy import Engine

from fcfs.kafka import end_offsets
from fcfs.settings import Settings
from tests.support import ROOT, settings_env
from tests.support.ledger import history_rows
from tests.support.processes import Processes

SECRET = "identity-test-secret-of-enough-length"


def test_participation_takes_the_tokens_user_and_refuses_everyone_else(
    settings: Settings, database: Engine, processes: Processes
) -> None:
    jwt_settings = settings.model_copy(
        update={"user_auth": "jwt", "jwt_secret": SecretStr(SECRET), "jwt_audience": "fcfs", "jwt_issuer": "shop"}
    )
    api = processes.api(jwt_settings)
    kafka, sync = api.create_campaign(total_stock=5), api.create_campaign(total_stock=5, mode="SYNC")
    cli = subprocess.run(
        [sys.executable, "-m", "fcfs.tokens", "--sub", "41"],
        cwd=ROOT,
        env=settings_env(jwt_settings),
        capture_output=True,
        text=True,
        check=True,
    )
    minted = cli.stdout.strip()

    def token(sub: str = "42", key: str = SECRET, **changes: object) -> str:
        claims = {"sub": sub, "aud": "fcfs", "iss": "shop", "exp": int(time.time()) + 60, **changes}
        return jwt.encode(claims, key, algorithm="HS256")

    def bearer(value: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {value}"}

    with api.client() as client:
        refused_before = end_offsets(settings)
        for path, campaign_id in (("participation", kafka), ("participation-sync", sync)):
            url = f"/api/campaigns/{campaign_id}/{path}"
            for headers in (
                {},
                bearer("garbage"),
                bearer(token(exp=int(time.time()) - 600)),
                bearer(token(aud="elsewhere")),
                bearer(
                    jwt.encode(
                        {"sub": "42", "aud": "fcfs", "iss": "shop", "exp": 2**40}, "a-wrong-secret-of-enough-length-too"
                    )
                ),
                {"Authorization": f"Basic {token()}"},
            ):
                r = client.post(url, json={"userId": 42}, headers=headers)
                assert (r.status_code, r.json()["errorCode"], r.json()["data"]) == (401, "UNAUTHENTICATED", None), (
                    headers
                )
                assert r.json()["message"] == "a valid bearer token is required"  # never why
                assert r.headers["www-authenticate"] == "Bearer"
            mismatch = client.post(url, json={"userId": 7}, headers=bearer(token()))  # a victim's id
            assert (mismatch.status_code, mismatch.json()["errorCode"]) == (403, "USER_MISMATCH")
        assert end_offsets(settings) == refused_before  # nothing refused reached Kafka

        accepted = [
            client.post(f"/api/campaigns/{kafka}/participation", json=body, headers=bearer(value))
            for body, value in (({"userId": 42}, token()), ({}, token("43")), ({}, minted))
        ]
        assert [(r.status_code, r.json()["data"]["userId"]) for r in accepted] == [(202, 42), (202, 43), (202, 41)]
        empty = client.post(f"/api/campaigns/{kafka}/participation", content=b"", headers=bearer(token("44")))
        assert (empty.status_code, empty.json()["data"]["userId"]) == (202, 44)
        decided = client.post(f"/api/campaigns/{sync}/participation-sync", json={}, headers=bearer(token("45")))
        assert (decided.status_code, decided.json()["data"]["userId"], decided.json()["data"]["status"]) == (
            200,
            45,
            "SUCCESS",
        )
        extra = client.post(f"/api/campaigns/{kafka}/participation", json={"user": 1}, headers=bearer(token()))
        assert (extra.status_code, extra.json()["errorCode"]) == (422, "VALIDATION_ERROR")
    assert [r.user_id for r in history_rows(database, sync)] == [45]


def test_without_user_auth_the_api_says_it_trusts_the_body(settings: Settings, processes: Processes) -> None:
    api = processes.api(settings)
    assert "USER_AUTH=none: participation trusts the userId in the body" in api.proc.log()
    with api.client() as client:
        r = client.post(f"/api/campaigns/{api.create_campaign(1)}/participation", json={})
        assert (r.status_code, r.json()["errorCode"]) == (422, "VALIDATION_ERROR")
        assert r.json()["data"]["errors"] == [{"field": "userId", "problem": "Field required"}]
