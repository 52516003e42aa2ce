"""The dashboard's pages, run headless with Streamlit's AppTest against the real backend."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterator

import pytest
from streamlit.testing.v1 import AppTest

from dashboard import auth
from fcfs.settings import Settings, get_settings
from fcfs.simulated import simulated_user
from tests.support import ADMIN_TOKEN, ROOT, free_port, wait_until
from tests.support.processes import Api, Processes

PAGES = ROOT / "dashboard" / "views"


@pytest.fixture(autouse=True)
def fresh_settings() -> Iterator[None]:
    """The pages read the process's settings once (`get_settings`): each test builds them from its own env."""
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


@pytest.fixture
def api(api: Api, monkeypatch: pytest.MonkeyPatch) -> Iterator[Api]:
    """The shared API, with the pages pointed at it."""
    monkeypatch.setenv("API_BASE_URL", api.base_url)
    monkeypatch.setenv("ADMIN_TOKEN", ADMIN_TOKEN)
    get_settings.cache_clear()
    yield api


def page(name: str, **query: str) -> AppTest:
    at = AppTest.from_file(str(PAGES / f"{name}.py"), default_timeout=30)
    for key, value in query.items():
        at.query_params[key] = value
    return at.run()


def metrics(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def test_live_page_shows_the_values_the_api_reports(api: Api, settings: Settings, processes: Processes) -> None:
    campaign_id = api.create_campaign(total_stock=40, name="Live page campaign")
    with api.client(admin=True) as client:
        for start in (1, 101):
            assert (
                client.post(
                    "/api/admin/test/participate-bulk",
                    json={"campaignId": campaign_id, "count": 150, "userIdStart": start},
                ).status_code
                == 202
            )
    assert processes.worker(settings, "--drain").wait(60) == 0
    status = api.status(campaign_id)

    at = page("live", campaign=str(campaign_id))

    assert not at.exception, at.exception
    shown = metrics(at)
    assert shown["Stock left"] == f"{status['currentStock']} / {status['totalStock']}" == "0 / 40"
    assert shown["Winners"] == str(status["successCount"]) == "40"
    assert shown["Fails (sold out)"] == str(status["failCount"])
    assert shown["Duplicates"] == str(status["duplicateCount"]) == "50"
    assert shown["Stock used"] == "100.00%"
    assert shown["Consumer lag"] == "0"
    assert any("Live page campaign" in s.value for s in at.subheader)
    assert at.selectbox(key="campaign").value == campaign_id

    # support look-up: (simulated) user 101 clicked once in each load, after the 40 winners (users 1-40)
    user = simulated_user(101)
    at.text_input(key="support-query").input(str(user))
    next(b for b in at.button if b.label == "Look up").click().run()
    assert not at.exception, at.exception
    captions = [c.value for c in at.caption]
    assert any(f"Simulated user {user}: 2 decided request(s)" in c for c in captions), captions
    found = at.dataframe[-1].value
    assert list(found["outcome"]) == ["FAIL", "DUPLICATE"] and list(found["winners before it"]) == [40, 40]


def test_the_live_page_pauses_resumes_and_ends_a_campaign_and_lists_its_switches(api: Api) -> None:
    campaign_id = api.create_campaign(total_stock=5, name="Switched campaign")
    at = page("live", campaign=str(campaign_id))
    assert not at.exception, at.exception
    at.button(key="pause").click().run()
    assert not at.exception, at.exception
    assert api.status(campaign_id)["paused"] is True
    assert any("PAUSED" in s.value for s in at.subheader)
    at.button(key="resume").click().run()
    assert api.status(campaign_id)["paused"] is False
    assert at.button(key="end").disabled  # not without "I mean it"
    at.checkbox(key="end-sure").check().run()
    at.button(key="end").click().run()
    assert not at.exception, at.exception
    assert api.status(campaign_id)["status"] == "ENDED"
    log = at.dataframe[0].value
    assert list(log["what"].str.split(" ").str[0]) == ["ended", "resumed", "paused"]  # newest first
    assert set(log["who"]) == {"dashboard"}


def test_the_live_page_shows_a_campaigns_claims_as_the_api_counts_them(
    api: Api, settings: Settings, processes: Processes
) -> None:
    """Stock 2, claims within 5 s: user 1 claims, user 2 does not — released, user 3 promoted and waiting."""
    campaign_id = api.create_campaign(total_stock=2, name="Claims campaign", claimSeconds=5)
    with api.client() as client:
        tickets = [
            client.post(f"/api/campaigns/{campaign_id}/participation", json={"userId": u}).json()["data"]
            for u in (1, 2, 3)
        ]
        processes.worker(settings)
        url = f"/api/campaigns/{campaign_id}/participation/{tickets[0]['requestId']}"
        assert client.get(url, params={"waitSeconds": 30}).json()["data"]["status"] == "SUCCESS"
        assert client.post(f"{url}/claim", json={"userId": 1}).status_code == 200
    releaser = processes.releaser(settings, "--interval", "0.2")
    wait_until(lambda: api.status(campaign_id)["releasedCount"] == 1, 30, "user 2's win released")
    assert releaser.terminate() == 0
    with api.client(admin=True) as admin:
        summary = admin.get(f"/api/admin/campaigns/{campaign_id}/claims").json()["data"]
    assert (summary["claimed"], summary["waiting"], summary["released"], summary["promoted"]) == (1, 1, 1, 1)
    assert sum(s["won"] for s in summary["perSecond"]) == summary["wins"] == 3

    at = page("live", campaign=str(campaign_id))
    assert not at.exception, at.exception
    shown = metrics(at)
    assert [shown[k] for k in ("Claimed", "Waiting for their claim", "Released", "Promoted")] == ["1", "1", "1", "1"]
    assert any("Claims — each win within 5 s" in s.value for s in at.subheader)


def test_the_live_page_shows_a_pre_queue_filling_and_its_draw_revealed(
    api: Api, settings: Settings, processes: Processes
) -> None:
    """A DRAW pre-queue of 4 users: the commitment shown from the start and the held count as it fills; once drawn
    (stock 1, at the first request after the opening), the seed, the winners and the draw on the switch log."""
    opens = dt.datetime.now(dt.UTC).replace(microsecond=0) + dt.timedelta(seconds=5)
    starts_at = opens.isoformat().replace("+00:00", "Z")
    campaign_id = api.create_campaign(
        total_stock=1, name="Drawn campaign", startsAt=starts_at, preQueueSeconds=600, preQueueOrder="DRAW"
    )
    processes.worker(settings)
    with api.client() as client:
        for user in (1, 2, 3, 4):
            assert client.post(f"/api/campaigns/{campaign_id}/participation", json={"userId": user}).status_code == 202
        with api.client(admin=True) as admin:
            url = f"/api/admin/campaigns/{campaign_id}/draw"
            wait_until(lambda: admin.get(url).json()["data"]["preQueuedCount"] == 4, 30, "the pre-queue held")
            commitment = admin.get(url).json()["data"]["drawCommitment"]
            at = page("live", campaign=str(campaign_id))
            assert not at.exception, at.exception
            assert metrics(at)["Held in the pre-queue"] == "4" and metrics(at)["Decided"] == "at the opening"
            assert any(commitment in m.value for m in at.markdown) and not any("Seed" in m.value for m in at.markdown)
            wait_until(lambda: time.time() >= opens.timestamp(), 10, "the opening")
            assert client.post(f"/api/campaigns/{campaign_id}/participation", json={"userId": 5}).status_code == 202
            state = wait_until(lambda: (d := admin.get(url).json()["data"])["drawnAt"] and d, 30, "the draw")
    at = page("live", campaign=str(campaign_id))
    assert not at.exception, at.exception
    assert metrics(at)["Decided"] == "1 winner"
    assert any(state["drawSeed"] in m.value for m in at.markdown)
    assert any("Fair opening — a pre-queue of 600 s, decided in a draw" in s.value for s in at.subheader)


def test_control_page_buttons_call_the_api(api: Api, settings: Settings) -> None:
    at = page("control")
    at.text_input(key="campaign-name").input("Created from the dashboard")
    at.number_input(key="campaign-stock").set_value(7)
    at.button[0].click().run()
    assert not at.exception, at.exception
    assert any("Created from the dashboard" in s.value for s in at.success), [s.value for s in at.success]
    with api.client(admin=True) as client:
        created = client.get("/api/admin/campaigns").json()["data"][0]
    assert (created["name"], created["totalStock"]) == ("Created from the dashboard", 7)

    at.number_input(key="bulk-count").set_value(25)
    at.selectbox(key="bulk-campaign").set_value(created["id"])
    at.button(key="bulk-launch").click().run()
    assert any("25 requests published" in s.value for s in at.success), [s.value for s in at.success]
    with api.client(admin=True) as client:
        assert client.get("/api/admin/kafka").json()["data"]["totalLag"] == 25

    at.button(key="aggregate-run").click().run()
    assert "job" in at.session_state
    assert any("Job #" in s.value for s in [*at.success, *at.info]), "the job's status is shown"


def test_the_control_page_creates_a_fair_opening_with_claims_and_refuses_a_pre_queue_without_an_opening(
    api: Api,
) -> None:
    """The create form's event fields reach the API as its contract names them: an opening in 10 minutes with a
    DRAW pre-queue of 60 s, an end 30 minutes after the opening, claims within 300 s; a pre-queue without an
    opening gets the API's refusal on the page and creates nothing."""
    at = page("control")
    at.text_input(key="campaign-name").input("Fair opening from the dashboard")
    at.number_input(key="campaign-opens-in").set_value(10)
    at.number_input(key="campaign-runs-for").set_value(30)
    at.number_input(key="campaign-pre-queue").set_value(60)
    at.radio(key="campaign-pre-queue-order").set_value("DRAW")
    at.number_input(key="campaign-claim").set_value(300)
    clicked = dt.datetime.now(dt.UTC)
    at.button[0].click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert any("a pre-queue of 60 s before it, decided by a draw" in s.value for s in at.success), at.success
    with api.client(admin=True) as client:
        created = next(
            c
            for c in client.get("/api/admin/campaigns").json()["data"]
            if c["name"] == "Fair opening from the dashboard"
        )
    opens, ends = (dt.datetime.fromisoformat(created[k]) for k in ("startsAt", "endsAt"))
    assert abs((opens - clicked).total_seconds() - 600) < 60 and ends - opens == dt.timedelta(minutes=30)
    assert (created["preQueueSeconds"], created["preQueueOrder"], created["claimSeconds"]) == (60, "DRAW", 300)
    assert created["status"] == "SCHEDULED"  # (its pre-queue opens 60 s before it)
    assert created["drawCommitment"] and created["drawSeed"] is None

    at.text_input(key="campaign-name").input("Pre-queue with no opening")
    at.number_input(key="campaign-opens-in").set_value(0)
    at.button[0].click().run()
    assert any("create the campaign" in e.value for e in at.error), [e.value for e in at.error]
    with api.client(admin=True) as client:
        names = [c["name"] for c in client.get("/api/admin/campaigns").json()["data"]]
    assert "Pre-queue with no opening" not in names


def test_the_control_page_generates_demo_history(api: Api) -> None:
    at = page("control")
    at.number_input(key="demo-days").set_value(1)
    at.number_input(key="demo-campaigns").set_value(2)
    at.number_input(key="demo-rows").set_value(300)
    at.button(key="demo-generate").click().run()
    assert not at.exception, at.exception
    assert any("2 generated campaigns" in s.value and "1 day(s) aggregated" in s.value for s in at.success), [
        s.value for s in at.success
    ]


def test_the_control_page_starts_follows_and_stops_a_crowd(
    settings: Settings, processes: Processes, monkeypatch: pytest.MonkeyPatch
) -> None:
    port = free_port()
    api = processes.api_on(settings, port, CROWD_TARGET_URL=f"http://127.0.0.1:{port}")
    monkeypatch.setenv("API_BASE_URL", api.base_url)
    monkeypatch.setenv("ADMIN_TOKEN", ADMIN_TOKEN)
    campaign_id = api.create_campaign(total_stock=10, name="crowd from the dashboard")
    at = AppTest.from_file(str(ROOT / "dashboard" / "app.py"), default_timeout=30)  # its link needs the menu
    at.session_state["signed-in"] = True
    at.query_params["campaign"] = str(campaign_id)
    at.switch_page("views/control.py").run()
    at.number_input(key="crowd-users").set_value(30_000)
    at.number_input(key="crowd-seconds").set_value(60)
    at.slider(key="crowd-repeat").set_value(20)
    at.radio(key="crowd-shape").set_value("rush")
    at.button(key="crowd-start").click().run()
    assert not at.exception, at.exception
    run_id = at.session_state["crowd-run"]
    with api.client(admin=True) as client:
        run = client.get(f"/api/admin/crowd/{run_id}").json()["data"]
        assert (run["campaignId"], run["users"], run["seconds"], run["repeatShare"], run["shape"]) == (
            campaign_id,
            30_000,
            60,
            0.2,
            "rush",
        )
        wait_until(lambda: client.get(f"/api/admin/crowd/{run_id}").json()["data"]["sent"] > 0, 20, "clicks")
    at.run()
    assert any(f"Crowd run #{run_id} on campaign #{campaign_id}: **RUNNING**" in i.value for i in at.info), [
        i.value for i in at.info
    ]
    sent = int(metrics(at)["Sent"].replace(",", ""))
    assert sent > 0
    at.button(key="crowd-stop").click().run()
    assert not at.exception, at.exception
    with api.client(admin=True) as client:
        wait_until(
            lambda: client.get(f"/api/admin/crowd/{run_id}").json()["data"]["status"] == "STOPPED", 20, "the stop"
        )
    at.run()
    assert any(f"Crowd run #{run_id}" in w.value and "STOPPED" in w.value for w in at.warning), [
        w.value for w in at.warning
    ]
    assert "crowd-stop" not in [b.key for b in at.button]


@pytest.mark.parametrize("wanted", ["²", "٣", "1" * 40, "-1", "7e3"])
def test_odd_campaign_ids_in_a_link_or_a_look_up_are_refused_quietly(api: Api, wanted: str) -> None:
    """`str.isdigit` takes "²" and "٣" for digits and `int` then fails or reads them: links and look-ups parse
    whole ASCII numbers only, and anything else is a request id to look up (not found), never a crash."""
    campaign_id = api.create_campaign(total_stock=3, name="odd links")
    at = page("live", campaign=wanted)
    assert not at.exception, at.exception
    at.selectbox(key="campaign").set_value(campaign_id).run()
    at.text_input(key="support-query").input(wanted)
    next(b for b in at.button if b.label == "Look up").click().run()
    assert not at.exception, at.exception
    analytics = page("analytics")
    analytics.text_input(key="campaign-filter").input(wanted).run()
    assert not analytics.exception, analytics.exception


def test_analytics_and_kafka_pages_render(api: Api) -> None:
    analytics = page("analytics")
    assert not analytics.exception, analytics.exception
    assert "Campaigns" in metrics(analytics)
    analytics.number_input(key="runs").set_value(2)
    analytics.button(key="measure").click().run()
    assert {"Raw, median", "Batched, median", "Ratio"} <= set(metrics(analytics))

    kafka = page("kafka")
    assert not kafka.exception, kafka.exception
    assert metrics(kafka)["Total lag"] == "0"


@pytest.mark.parametrize("name", ["live", "control", "analytics", "kafka"])
def test_pages_say_clearly_when_the_backend_is_down(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("API_BASE_URL", f"http://127.0.0.1:{free_port()}")
    get_settings.cache_clear()
    at = page(name)
    assert not at.exception, at.exception
    assert any("backend is unreachable" in w.value for w in at.warning), [w.value for w in at.warning]
    assert not at.error


def test_no_page_shows_before_sign_in_and_wrong_passwords_slow_the_guesser_only(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    waits: list[float] = []
    client = {"address": "203.0.113.7"}
    monkeypatch.setattr(auth, "_failures", {})  # this test's own count of failures
    monkeypatch.setattr(auth, "sleep", waits.append)  # the waits recorded, not slept
    monkeypatch.setattr(auth, "_client", lambda: client["address"])
    monkeypatch.setenv("DASHBOARD_PASSWORD", "operators-only")
    get_settings.cache_clear()
    at = AppTest.from_file(str(ROOT / "dashboard" / "app.py"), default_timeout=30)
    at.query_params["campaign"] = str(api.create_campaign(total_stock=3))
    at.run()

    def sign_in(password: str) -> None:
        at.text_input[0].input(password)
        at.button[0].click().run()

    assert not at.exception, at.exception
    assert [t.label for t in at.text_input] == ["Password"] and not at.metric  # nothing of any page
    sign_in(ADMIN_TOKEN)  # the admin token is not the password when DASHBOARD_PASSWORD is set
    assert [e.value for e in at.error] == ["Wrong password."] and not at.metric
    sign_in("operators-only")
    assert not at.exception and "Winners" in metrics(at)  # the Live page
    at.sidebar.button[0].click().run()  # sign out
    assert [t.label for t in at.text_input] == ["Password"] and not at.metric

    for _ in range(4):  # five wrong passwords from this address, counting the first one above ...
        sign_in("guess")
    assert waits == [2.0, 4.0, 8.0]  # ... the 3rd, 4th and 5th each checked only after a longer wait
    client["address"] = "198.51.100.9"  # someone else at the same time is not slowed
    sign_in("operators-only")
    assert waits == [2.0, 4.0, 8.0] and "Winners" in metrics(at)
    at.sidebar.button[0].click().run()
    client["address"] = "203.0.113.7"
    sign_in("operators-only")  # and the guesser's address gets in with the right one, after its wait
    assert waits == [2.0, 4.0, 8.0, 16.0] and not at.error and "Winners" in metrics(at)


def test_session_cookies_are_signed_expiring_and_revoked_on_sign_out(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DASHBOARD_PASSWORD", "operators-only")
    get_settings.cache_clear()
    now = 1_800_000_000.0
    cookie = auth.session_cookie("abc", now + 60)
    assert auth._valid_session(cookie, now) == "abc"
    assert auth._valid_session(cookie, now + 61) is None  # expired
    body, mac = cookie.split(".")
    assert auth._valid_session(f"{body}.{'0' * len(mac)}", now) is None  # forged
    assert auth._valid_session(auth.session_cookie("abc", now + 10**9)[:-1] + "0", now) is None
    for junk in ("", "x", "a.b.c", "." * 600, "eyJ.x"):
        assert auth._valid_session(junk, now) is None
    monkeypatch.setenv("DASHBOARD_PASSWORD", "a-new-password")
    get_settings.cache_clear()
    assert auth._valid_session(cookie, now) is None  # a new password ends every session
