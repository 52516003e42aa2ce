"""The participant's side against the real stack: look-ups held until the worker decides (answered from the API's
decision feed, not a database read each), their bounds, and the participant's page."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import re
import time
from typing import Any

import aiohttp
import httpx
from selenium import webdriver
from selenium.webdriver.common.by import By
from sqlalchemy import Engine, select, text

from fcfs.schema import participation_history
from fcfs.settings import Settings
from tests.support import wait_until
from tests.support.processes import Api, Processes

h = participation_history.c
HELD = 300


def _selects(database: Engine) -> int:
    with database.connect() as conn:
        return int(conn.execute(text("SHOW GLOBAL STATUS LIKE 'Com_select'")).one()[1])


def _held(api: Api) -> float:
    found = re.search(r"^fcfs_lookups_held(?:\{[^}]*\})? (\S+)$", httpx.get(f"{api.base_url}/metrics").text, re.M)
    return float(found[1]) if found else 0.0


def _post_all(api: Api, campaign_id: int, users: range) -> list[dict[str, Any]]:
    with api.client() as client:
        answers = [client.post(f"/api/campaigns/{campaign_id}/participation", json={"userId": u}) for u in users]
    assert [a.status_code for a in answers].count(202) == len(users)
    return [a.json()["data"] for a in answers]


def test_held_look_ups_are_answered_from_the_feed_when_the_worker_decides(
    settings: Settings, database: Engine, processes: Processes
) -> None:
    """300 look-ups held (waitSeconds=25) before the worker runs: while held they cost the database no read each
    (its own statement counter), and each is answered with its row's outcome, place and winners before it once the
    worker has decided, before its wait was up."""
    api = processes.api(settings)
    campaign_id = api.create_campaign(total_stock=10)
    tickets = _post_all(api, campaign_id, range(1, HELD + 1))
    answered: dict[str, tuple[float, dict[str, Any]]] = {}

    async def hold_all() -> None:  # (aiohttp: httpx's pool takes milliseconds per answer with 300 at once)
        connector = aiohttp.TCPConnector(limit=HELD)
        async with aiohttp.ClientSession(api.base_url, connector=connector) as client:

            async def hold(ticket: dict[str, Any]) -> None:
                url = f"/api/campaigns/{campaign_id}/participation/{ticket['requestId']}"
                params = {"partition": ticket["partition"], "offset": ticket["offset"], "waitSeconds": 25}
                async with client.get(url, params=params) as r:
                    assert r.status == 200, await r.text()
                    answered[ticket["requestId"]] = (time.time(), (await r.json())["data"])

            await asyncio.gather(*(hold(t) for t in tickets))

    selects_before = _selects(database)
    holding_started = time.time()
    waiting = asyncio.new_event_loop()
    holding = waiting.run_in_executor(None, asyncio.run, hold_all())
    wait_until(lambda: _held(api) == HELD, 30, f"{HELD} held look-ups")
    time.sleep(1.0)  # held a while: a look-up that polled the database would show here
    selects_held = _selects(database) - selects_before
    assert not answered
    worker_started = time.time()
    worker = processes.worker(settings, "--drain")
    waiting.run_until_complete(holding)
    waiting.close()
    assert worker.wait(60) == 0
    # the API's own work (the feed's rounds, the lag sampler, the intake seconds) is a few statements a second;
    # a read per held look-up would be 300 and more
    assert selects_held < HELD / 2, selects_held

    with database.connect() as conn:
        rows = conn.execute(
            select(h.request_id, h.status, h.kafka_partition, h.kafka_offset, h.decided_at)
            .where(h.campaign_id == campaign_id)
            .order_by(h.kafka_offset)
        ).all()
    assert len(rows) == len(answered) == HELD
    for place, row in enumerate(rows, start=1):
        at, data = answered[row.request_id]
        assert data["status"] == row.status.value and (data["partition"], data["offset"]) == (
            row.kafka_partition,
            row.kafka_offset,
        )
        assert (data["place"], data["winnersBefore"]) == (place, min(place - 1, 10))
        assert at > worker_started and at < holding_started + 25  # woken by the decision, not by the wait's end
    # how soon after the row is readable the answer comes is a figure, not a pass mark: `python -m bench.lookups`;
    # the server counts every held answer's time after its decision, and each is after it and before the answer
    metrics = httpx.get(f"{api.base_url}/metrics").text
    count = re.search(r"^fcfs_held_answer_after_decision_seconds_count (\S+)$", metrics, re.M)
    total = re.search(r"^fcfs_held_answer_after_decision_seconds_sum (\S+)$", metrics, re.M)
    assert count is not None and total is not None, metrics[-2000:]
    assert float(count[1]) == HELD
    latest = max(at for at, _ in answered.values())
    assert 0 < float(total[1]) / HELD < latest - min(row.decided_at.replace(tzinfo=dt.UTC).timestamp() for row in rows)


def test_a_held_look_up_ends_pending_at_its_wait_and_the_bounds_refuse(
    settings: Settings, database: Engine, processes: Processes
) -> None:
    api = processes.api(settings, WAIT_MAX_PER_CLIENT="3", WAIT_MAX_HELD="5")
    campaign_id = api.create_campaign(total_stock=1)
    tickets = _post_all(api, campaign_id, range(1, 9))

    def url(ticket: dict[str, Any]) -> str:
        return f"/api/campaigns/{campaign_id}/participation/{ticket['requestId']}"

    with api.client() as client:
        started = time.monotonic()
        t = tickets[0]
        r = client.get(url(t), params={"partition": t["partition"], "offset": t["offset"], "waitSeconds": 1.5})
        assert time.monotonic() - started >= 1.5
        assert r.json()["data"]["status"] == "PENDING" and r.json()["data"]["ahead"] == t["offset"]
        for bad in ("31", "-1", "nan", "inf", "soon", ""):
            r = client.get(url(t), params={"waitSeconds": bad})
            assert (r.status_code, r.json()["errorCode"]) == (422, "VALIDATION_ERROR"), bad

    async def crowd() -> list[httpx.Response]:
        # four from 127.0.0.1 (the client's bound: 3), then two from 127.0.0.2 (the process holds 5 at most), then
        # one from 127.0.0.3 (the process is full); each step starts when the door's own gauge shows the last held
        transports = [httpx.AsyncHTTPTransport(local_address=f"127.0.0.{n}") for n in (1, 2, 3)]
        clients = [httpx.AsyncClient(base_url=api.base_url, timeout=60, transport=t) for t in transports]

        async def held(count: int) -> None:
            deadline = time.monotonic() + 30
            while _held(api) != count:
                assert time.monotonic() < deadline, f"{count} held look-ups"
                await asyncio.sleep(0.02)

        def hold(client: httpx.AsyncClient, ticket: dict[str, Any]) -> asyncio.Task[httpx.Response]:
            return asyncio.create_task(client.get(url(ticket), params={"waitSeconds": 12}))

        try:
            first = [hold(clients[0], t) for t in tickets[:3]]
            await held(3)
            over_client = await hold(clients[0], tickets[3])  # refused at once, the three still held
            later = [hold(clients[1], t) for t in tickets[4:6]]
            await held(5)
            over_process = await hold(clients[2], tickets[6])
            assert _held(api) == 5  # the refusals took no place
            return [over_client, over_process, *await asyncio.gather(*first, *later)]
        finally:
            for c in clients:
                await c.aclose()

    answers = asyncio.run(crowd())
    codes = sorted((r.status_code, r.json()["errorCode"]) for r in answers)
    assert codes == [(200, None)] * 5 + [(429, "TOO_MANY_WAITING"), (503, "WAITING_FULL")], codes
    assert all(r.headers.get("retry-after") for r in answers if r.status_code != 200)
    assert all(r.json()["data"]["status"] == "PENDING" for r in answers if r.status_code == 200)


def test_a_stopping_server_answers_its_held_look_ups_pending_at_once_and_exits(
    settings: Settings, processes: Processes
) -> None:
    """SIGTERM to a server holding look-ups for 30 s: they are answered PENDING at once, with their
    place in line, and the server exits within seconds instead of waiting out the holds (a deploy, a restart)."""
    api = processes.api(settings)
    campaign_id = api.create_campaign(total_stock=1)
    tickets = _post_all(api, campaign_id, range(1, 7))

    async def hold_all() -> list[tuple[float, int, dict[str, Any]]]:
        async with aiohttp.ClientSession(api.base_url) as client:

            async def hold(ticket: dict[str, Any]) -> tuple[float, int, dict[str, Any]]:
                url = f"/api/campaigns/{campaign_id}/participation/{ticket['requestId']}"
                params = {"partition": ticket["partition"], "offset": ticket["offset"], "waitSeconds": 30}
                async with client.get(url, params=params) as r:
                    return time.monotonic(), r.status, (await r.json())["data"]

            return await asyncio.gather(*(hold(t) for t in tickets))

    waiting = asyncio.new_event_loop()
    holding = waiting.run_in_executor(None, asyncio.run, hold_all())
    wait_until(lambda: _held(api) == len(tickets), 30, f"{len(tickets)} held look-ups")
    stopped_at = time.monotonic()
    assert api.proc.terminate(timeout_s=20) == 0
    exited_after = time.monotonic() - stopped_at
    answers = waiting.run_until_complete(holding)
    waiting.close()
    assert exited_after < 10, exited_after  # (held to the end, it would take their 30 s)
    for (at, status, data), ticket in zip(answers, tickets, strict=True):
        assert status == 200 and data["status"] == "PENDING", data
        assert data["ahead"] == ticket["offset"] and at - stopped_at < 10


def test_the_participant_page_is_served_escaped_and_locked_down(settings: Settings, processes: Processes) -> None:
    api = processes.api(settings)
    campaign_id = api.create_campaign(total_stock=3, name='AirPods <script>alert("x")</script> & {about}')
    with api.client() as client:
        page = client.get(f"/c/{campaign_id}")
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert "<script>alert" not in page.text and "AirPods &lt;script&gt;" in page.text
        assert "{about}" in page.text and "3 prizes" in page.text  # a name is shown as written, nothing more
        assert f'data-campaign="{campaign_id}"' in page.text and 'data-auth="none"' in page.text
        assert "script-src 'self'" in page.headers["content-security-policy"]
        assert client.get("/c/page.js").headers["content-type"].startswith("text/javascript")
        missing = client.get("/c/999999999")
        assert missing.status_code == 404 and "No such campaign" in missing.text
        assert client.get("/c/nope").status_code == 422
        assert client.get("/c/page.exe").status_code == 422


def test_a_browser_takes_part_on_the_page_and_sees_its_ticket_then_its_outcome(
    settings: Settings, database: Engine, processes: Processes, browser: webdriver.Chrome
) -> None:
    """Headless Chromium clicks "Take part": the page shows the ticket the door gave (the offset Kafka assigned),
    then — held look-ups, no reload — the outcome the worker recorded for that request: FAIL where another user
    clicked first on a one-prize campaign, SUCCESS where the browser was first. A reload shows it again."""
    api = processes.api(settings)
    taken = api.create_campaign(total_stock=1, name="Taken first")
    free = api.create_campaign(total_stock=1, name="First come")
    _post_all(api, taken, range(1, 2))  # somebody else is first in line
    seen = {}
    for campaign_id in (taken, free):
        browser.get(f"{api.base_url}/c/{campaign_id}")
        browser.find_element(By.ID, "take-part").click()
        wait_until(lambda: browser.find_element(By.ID, "ticket-number").text, 15, "the ticket on the page")
        stored = json.loads(browser.execute_script(f"return localStorage.getItem('fcfs-request-{campaign_id}')"))
        assert browser.find_element(By.ID, "ticket-number").text.startswith(f"#{stored['offset']} ")
        assert browser.find_element(By.ID, "message").get_attribute("data-status") == "PENDING"
        seen[campaign_id] = stored
    assert processes.worker(settings, "--drain").wait(60) == 0
    with database.connect() as conn:
        recorded = dict(
            conn.execute(
                select(h.request_id, h.status).where(h.request_id.in_([s["requestId"] for s in seen.values()]))
            ).all()
        )
    assert {recorded[seen[taken]["requestId"]].value, recorded[seen[free]["requestId"]].value} == {"FAIL", "SUCCESS"}
    assert recorded[seen[taken]["requestId"]].value == "FAIL"
    # the page still open on the last campaign shows its outcome without a reload; the first one on a reload
    status = wait_until(
        lambda: (s := browser.find_element(By.ID, "message").get_attribute("data-status")) != "PENDING" and s,
        15,
        "the outcome on the page",
    )
    assert status == "SUCCESS" and "won" in browser.find_element(By.ID, "message").text
    # what the click cost the door: one POST, then one look-up held until the decision
    calls = browser.execute_script(
        "return performance.getEntriesByType('resource').map(e => [e.initiatorType, e.name])"
    )
    api_calls = [name.split("/api/", 1)[1].split("?")[0] for kind, name in calls if "/api/" in name]
    assert api_calls == [f"campaigns/{free}/participation", f"campaigns/{free}/participation/{seen[free]['requestId']}"]
    browser.get(f"{api.base_url}/c/{taken}")
    status = wait_until(
        lambda: (
            (s := browser.find_element(By.ID, "message").get_attribute("data-status")) not in ("PENDING", "READY") and s
        ),
        15,
        "the outcome after a reload",
    )
    assert status == "FAIL"


def test_a_made_up_ticket_does_not_change_a_decided_answer(
    settings: Settings, database: Engine, processes: Processes
) -> None:
    """The ticket is the client's to present: a made-up one (another partition, an offset far ahead or behind)
    for a decided request, asked of API processes that know nothing of it yet, still gets the recorded outcome —
    the feed reads a newly followed campaign from its first request; a look-up never changes what is stored."""
    api = processes.api(settings)
    campaign_id = api.create_campaign(total_stock=1)
    tickets = _post_all(api, campaign_id, range(1, 4))
    assert processes.worker(settings, "--drain").wait(60) == 0
    with database.connect() as conn:
        recorded = dict(conn.execute(select(h.request_id, h.status).where(h.campaign_id == campaign_id)).all())
    lies = [(0, 10**12), (0, 0), (5, tickets[0]["offset"])]
    for (partition, offset), ticket in zip(lies, tickets, strict=True):
        fresh = processes.api(settings)  # nothing cached, the campaign not followed yet
        url = f"/api/campaigns/{campaign_id}/participation/{ticket['requestId']}"
        with fresh.client() as client:
            answer = client.get(url, params={"partition": partition, "offset": offset, "waitSeconds": 1})
        assert answer.status_code == 200, answer.text
        data = answer.json()["data"]
        assert data["status"] == recorded[ticket["requestId"]].value != "PENDING"
        assert (data["partition"], data["offset"]) == (ticket["partition"], ticket["offset"])  # the stored ones
    with database.connect() as conn:
        assert dict(conn.execute(select(h.request_id, h.status).where(h.campaign_id == campaign_id)).all()) == recorded


def test_on_the_page_a_fail_waits_in_line_a_released_prize_comes_to_it_and_it_claims_it(
    settings: Settings, database: Engine, processes: Processes, browser: webdriver.Chrome
) -> None:
    """A one-prize campaign whose winners claim within 8 s: another user wins first and does not claim; the
    browser's FAIL says it is on the waiting list and — no reload — the released prize comes to it (promoted,
    with the claim button); it claims, the page says so, and the database has the claim."""
    api = processes.api(settings)
    campaign_id = api.create_campaign(total_stock=1, name="Claim it", claimSeconds=8)
    processes.worker(settings)
    first = _post_all(api, campaign_id, range(1, 2))[0]
    browser.get(f"{api.base_url}/c/{campaign_id}")
    assert "winners claim within 8 s" in browser.find_element(By.ID, "about").text
    browser.find_element(By.ID, "take-part").click()

    def status() -> str:
        return str(browser.find_element(By.ID, "message").get_attribute("data-status"))

    wait_until(lambda: status() == "FAIL", 30, "the FAIL on the page")
    assert "waiting list" in browser.find_element(By.ID, "claim-note").text
    processes.releaser(settings, "--interval", "0.2")
    wait_until(lambda: status() == "SUCCESS", 30, "the released prize on the page")
    assert "passed on to you" in browser.find_element(By.ID, "message").text
    claim_button = browser.find_element(By.ID, "claim")
    assert claim_button.is_displayed()
    claim_button.click()
    wait_until(
        lambda: status() == "CLAIMED", 15, f"the claim on the page: {browser.find_element(By.ID, 'claim-note').text}"
    )
    stored = json.loads(browser.execute_script(f"return localStorage.getItem('fcfs-request-{campaign_id}')"))
    with database.connect() as conn:
        claims = {
            r.request_id: r
            for r in conn.execute(
                text("SELECT request_id, claimed_at, released_at, promoted FROM claim WHERE campaign_id = :c"),
                {"c": campaign_id},
            )
        }
    assert claims[first["requestId"]].released_at is not None and claims[first["requestId"]].claimed_at is None
    mine = claims[stored["requestId"]]
    assert mine.claimed_at is not None and mine.promoted and mine.released_at is None


def test_on_the_page_a_click_in_the_pre_queue_waits_for_the_opening_then_shows_the_draws_outcome(
    settings: Settings, database: Engine, processes: Processes, browser: webdriver.Chrome
) -> None:
    """A campaign drawn at its opening: the page says how it opens; a click in the pre-queue shows it waits for the
    opening (no line yet), then — no reload — the outcome the draw recorded for it."""
    api = processes.api(settings)
    opens = dt.datetime.now(dt.UTC).replace(microsecond=0) + dt.timedelta(seconds=6)
    campaign_id = api.create_campaign(
        total_stock=1,
        name="Drawn at the opening",
        startsAt=opens.isoformat().replace("+00:00", "Z"),
        preQueueSeconds=600,
        preQueueOrder="DRAW",
    )
    processes.worker(settings)
    browser.get(f"{api.base_url}/c/{campaign_id}")
    assert "random order drawn at the opening" in browser.find_element(By.ID, "about").text
    browser.find_element(By.ID, "take-part").click()
    wait_until(lambda: "pre-queue" in browser.find_element(By.ID, "message").text, 15, "the pre-queue on the page")
    assert browser.find_element(By.ID, "message").get_attribute("data-status") == "PENDING"
    assert browser.find_element(By.ID, "eta").text == "at the opening"
    stored = json.loads(browser.execute_script(f"return localStorage.getItem('fcfs-request-{campaign_id}')"))
    status = wait_until(
        lambda: (s := browser.find_element(By.ID, "message").get_attribute("data-status")) != "PENDING" and s,
        40,
        "the draw's outcome on the page",
    )
    with database.connect() as conn:
        recorded = conn.execute(select(h.status).where(h.request_id == stored["requestId"])).scalar_one()
    assert time.time() >= opens.timestamp() and status == recorded.value == "SUCCESS"  # the only one in the draw
