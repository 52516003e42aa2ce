"""A real browser (headless Chromium) on the dashboard: the Live page follows a bulk load and a crowd started from
the Control page without a reload, and every page recovers by itself when the API comes back."""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
from selenium import webdriver
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys

from backend.app.serve import api_command
from fcfs.settings import Settings
from tests.support import ADMIN_TOKEN, ROOT, free_port, settings_env, wait_until
from tests.support.processes import Api, Proc, Processes

# Where the screenshot goes: a temporary folder, unless scripts/screenshot.sh asks for the docs' image.
SCREENSHOT_ENV = "DASHBOARD_SCREENSHOT"


def shown_metrics(driver: webdriver.Chrome) -> dict[str, str]:
    """The metrics on the page, label -> value (read in one script: the page redraws every second)."""
    found: dict[str, str] = driver.execute_script(
        """
        const out = {};
        for (const m of document.querySelectorAll('[data-testid="stMetric"]')) {
          const label = m.querySelector('[data-testid="stMetricLabel"]');
          const value = m.querySelector('[data-testid="stMetricValue"]');
          if (label && value) out[label.innerText.trim()] = value.innerText.trim();
        }
        return out;
        """
    )
    return found


def click(driver: webdriver.Chrome, tag: str, text: str) -> None:
    """Click the first `tag` element whose text has `text`, found and clicked in one script (an element
    found first and clicked later may have been redrawn in between)."""
    script = """
        for (const e of document.querySelectorAll(arguments[0])) {
          if (e.innerText.includes(arguments[1])) { e.click(); return true; }
        }
        return false;
    """
    wait_until(lambda: driver.execute_script(script, tag, text), 30, f"a {tag} with {text!r} to click")


def page_text(driver: webdriver.Chrome) -> str:
    return str(driver.execute_script("return document.body.innerText"))


def sign_in(browser: webdriver.Chrome, address: str) -> None:
    """Open the dashboard at `address`: the sign-in form is all there is until the password is given."""
    browser.get(address)
    password = wait_until(
        lambda: browser.find_elements(By.CSS_SELECTOR, 'input[type="password"]'), 60, "the sign-in form"
    )[0]
    assert not browser.find_elements(By.CSS_SELECTOR, '[data-testid="stMetric"]')
    password.send_keys(ADMIN_TOKEN)
    next(b for b in browser.find_elements(By.TAG_NAME, "button") if "Sign in" in b.text).click()
    wait_until(lambda: not browser.find_elements(By.CSS_SELECTOR, 'input[type="password"]'), 30, "the sign-in")


def test_live_page_follows_a_bulk_load_without_reloading(
    settings: Settings, processes: Processes, browser: webdriver.Chrome, tmp_path: Path
) -> None:
    api = processes.api(settings)
    campaign_id = api.create_campaign(total_stock=20_000, name="Christmas AirPods")
    url = start_dashboard(processes, settings, api.base_url)

    sign_in(browser, f"{url}/?campaign={campaign_id}")
    wait_until(lambda: shown_metrics(browser).get("Winners") == "0", 60, "the Live page to show the campaign")
    browser.execute_script("window.__sameDocument = 'yes'")  # gone if the page reloads

    seen = set()

    def shows(count: str) -> bool:
        winners = shown_metrics(browser).get("Winners")
        seen.add(winners)
        return winners == count

    # the second half held back until the page has shown the first: 15,000 winners of 20,000 on the way up,
    # seen however fast the worker is
    worker = processes.worker(settings, WORKER_BATCH_SIZE="20")
    with api.client(admin=True) as client:
        for start, then in ((1, "15,000"), (30_001, "20,000")):
            body = {"campaignId": campaign_id, "count": 15_000, "userIdStart": start}
            assert client.post("/api/admin/test/participate-bulk", json=body).status_code == 202
            wait_until(lambda t=then: shows(t), 90, f"the winner count to reach {then}", interval_s=0.2)
    assert worker.popen.poll() is None
    assert browser.execute_script("return window.__sameDocument") == "yes"  # no reload happened
    climbing = sorted(int(w.replace(",", "")) for w in seen if w)
    assert 15_000 in climbing and climbing[-1] == 20_000, climbing
    wait_until(lambda: shown_metrics(browser).get("Consumer lag") == "0", 60, "the lag to drain", interval_s=0.5)
    time.sleep(2.5)  # let the curves take the last seconds
    final = shown_metrics(browser)
    assert final["Stock left"] == "0 / 20,000"
    assert final["Duplicates"] == "0" and final["Fails (sold out)"] == "10,000"
    assert len(browser.find_elements(By.CSS_SELECTOR, ".js-plotly-plot")) >= 3
    screenshot = tmp_path / "dashboard-live.png"
    browser.save_screenshot(str(screenshot))
    assert screenshot.stat().st_size > 10_000
    print(f"winner counts seen on the page without reloading: {climbing}")


def plotted(browser: webdriver.Chrome) -> dict[str, dict[str, float]]:
    """The Live page's curves as drawn: trace name -> {x: y} (the per-second ones: intake and decisions)."""
    traces: dict[str, dict[str, float]] = browser.execute_script(
        """
        const out = {};
        for (const gd of document.querySelectorAll('.js-plotly-plot')) {
          for (const t of (gd.data || [])) {
            if (t.name && t.x && t.y) {
              out[t.name] = Object.fromEntries(t.x.map((x, i) => [String(x), Number(t.y[i] || 0)]));
            }
          }
        }
        return out;
        """
    )
    return traces


def start_dashboard(processes: Processes, settings: Settings, api_url: str) -> str:
    port = free_port()
    processes.start(
        "dashboard",
        [
            sys.executable,
            "-m",
            "streamlit",
            "run",
            str(ROOT / "dashboard" / "app.py"),
            "--server.port",
            str(port),
            "--server.address",
            "127.0.0.1",
            "--server.headless",
            "true",
            "--browser.gatherUsageStats",
            "false",
        ],
        settings_env(settings, API_BASE_URL=api_url, ADMIN_TOKEN=ADMIN_TOKEN),
    )
    url = f"http://127.0.0.1:{port}"
    wait_until(lambda: _up(url), 60, "the dashboard to serve")
    return url


def test_a_storm_started_from_the_control_page_climbs_on_the_live_page_and_a_stopped_worker_shows_flat(
    settings: Settings, processes: Processes, browser: webdriver.Chrome, tmp_path: Path
) -> None:
    """The Control page starts a crowd (20,000 users over 40 s through the real door); its link opens the
    Live page, where the door's answers and the decisions climb; a worker held still for 5 s shows as a
    flat stretch of decisions under a steady intake; at the end the page shows what the crowd counted."""
    api_port = free_port()
    api = processes.api_on(settings, api_port, workers=2, CROWD_TARGET_URL=f"http://127.0.0.1:{api_port}")
    campaign_id = api.create_campaign(total_stock=5_000, name="Christmas AirPods")
    worker = processes.worker(settings)
    url = start_dashboard(processes, settings, api.base_url)

    sign_in(browser, f"{url}/control?campaign={campaign_id}")
    seconds = wait_until(
        lambda: browser.find_elements(By.CSS_SELECTOR, 'input[aria-label="Seconds"]'), 30, "the crowd's form"
    )[0]
    seconds.send_keys(Keys.CONTROL, "a")
    seconds.send_keys("40", Keys.ENTER)  # long enough for a busy machine's browser to follow
    wait_until(lambda: "Connections" in page_text(browser), 10, "the rerun")
    click(browser, "button", "Start the crowd")
    held: dict[str, Any] = {}
    holding = threading.Thread(target=hold_the_worker_a_while, args=(api, campaign_id, worker, held), daemon=True)
    holding.start()  # apart from the browser, which may be slow to follow
    wait_until(lambda: f"on campaign #{campaign_id}: RUNNING" in page_text(browser), 30, "the crowd to run")
    click(browser, "a", "Watch the campaign on the Live page")
    wait_until(lambda: "Winners" in shown_metrics(browser), 30, "the Live page")
    browser.execute_script("window.__sameDocument = 'yes'")

    accepted_seen, decided_seen = [], []

    def watch() -> tuple[float, float]:
        curves = plotted(browser)  # a chart being redrawn has no traces for a moment: not a value drawn
        if "accepted (202)" in curves and "decided" in curves:
            accepted_seen.append(sum(curves["accepted (202)"].values()))
            decided_seen.append(sum(curves["decided"].values()))
        return (accepted_seen[-1], decided_seen[-1]) if accepted_seen else (0.0, 0.0)

    with api.client(admin=True) as client:

        def finished() -> dict[str, Any] | None:
            watch()
            now = crowd_of(client, campaign_id)
            return now if now.get("status") == "FINISHED" else None

        run = wait_until(finished, 120, "the crowd to finish", 0.5)
    holding.join(30)
    assert held.get("sent", run["planned"]) < run["planned"], f"the crowd ended while the worker was held: {held}"
    assert run["campaignId"] == campaign_id and run["accepted"] == run["sent"] == run["planned"], run
    # the page ends up showing what the crowd counted at the door, every request decided
    wait_until(
        lambda: watch() == (run["accepted"], run["accepted"]),
        60,
        f"the page to show {run['accepted']:,} accepted and decided (seen {accepted_seen[-3:]}, {decided_seen[-3:]})",
        0.5,
    )
    for seen in (accepted_seen, decided_seen):  # climbing, as drawn
        assert len({v for v in seen if 0 < v < run["accepted"]}) >= 3, seen
    assert browser.execute_script("return window.__sameDocument") == "yes"  # followed without a reload
    assert accepted_seen == sorted(accepted_seen) and decided_seen == sorted(decided_seen)
    curves = plotted(browser)
    accepted, decided = curves["accepted (202)"], curves["decided"]
    busy = sorted(x for x, n in decided.items() if n > 0)
    flat = [x for x in decided if busy[0] < x < busy[-1] and decided[x] == 0 and accepted.get(x, 0) > 0]
    assert len(flat) >= 3, f"no flat stretch of decisions under a steady intake: {decided}"
    assert shown_metrics(browser)["Stock left"] == "0 / 5,000"
    time.sleep(2)  # the last refresh drawn
    screenshot = Path(os.environ.get(SCREENSHOT_ENV) or tmp_path / "dashboard-live.png")
    screenshot.parent.mkdir(parents=True, exist_ok=True)
    browser.save_screenshot(str(screenshot))
    assert screenshot.stat().st_size > 10_000
    print(f"accepted as drawn: {accepted_seen[::4]}; decided: {decided_seen[::4]}; flat seconds: {len(flat)}")


def crowd_of(client: httpx.Client, campaign_id: int) -> dict[str, Any]:
    """The newest crowd run of the campaign ({} before there is one)."""
    runs = client.get("/api/admin/crowd", params={"limit": 20}).json()["data"]
    return next((r for r in runs if r["campaignId"] == campaign_id), {})


def hold_the_worker_a_while(api: Api, campaign_id: int, worker: Proc, held: dict[str, Any]) -> None:
    """Once a quarter of the crowd is sent, hold the worker still (SIGSTOP) for 5 s: the intake goes on,
    the decisions stop. `held` gets the crowd's figures as it is let go."""
    with api.client(admin=True) as client:

        def crowd() -> dict[str, Any]:
            return crowd_of(client, campaign_id)

        wait_until(lambda: (now := crowd()) and now["sent"] >= now["planned"] // 4, 60, "a quarter of the crowd", 0.2)
        worker.popen.send_signal(signal.SIGSTOP)
        try:
            time.sleep(5)
        finally:
            worker.popen.send_signal(signal.SIGCONT)
        held.update(crowd())


def _up(url: str) -> bool:
    try:
        return httpx.get(f"{url}/_stcore/health", timeout=1).status_code == 200
    except httpx.TransportError:
        return False


def test_pages_recover_by_themselves_when_the_backend_comes_back(
    settings: Settings, processes: Processes, browser: webdriver.Chrome
) -> None:
    api_port = free_port()
    url = start_dashboard(processes, settings, f"http://127.0.0.1:{api_port}")
    sign_in(browser, url)
    analytics = wait_until(
        lambda: [a for a in browser.find_elements(By.CSS_SELECTOR, "a") if "Analytics" in a.text], 30, "the menu"
    )
    analytics[0].click()
    wait_until(lambda: "backend is unreachable" in browser.page_source, 30, "the backend-down message")
    browser.execute_script("window.__sameDocument = 'yes'")

    processes.start(  # the API comes up on the port the dashboard was told about
        "api",
        api_command(api_port),
        settings_env(settings, ADMIN_TOKEN=ADMIN_TOKEN),
    )
    wait_until(
        lambda: "Success rate" in browser.page_source and "backend is unreachable" not in browser.page_source,
        60,
        "the page to recover by itself",
    )
    assert browser.execute_script("return window.__sameDocument") == "yes"


def test_a_signed_in_browser_stays_signed_in_across_reloads_and_links_until_it_signs_out(
    settings: Settings, processes: Processes, browser: webdriver.Chrome
) -> None:
    api = processes.api(settings)
    campaign_id = api.create_campaign(total_stock=3, name="cookie campaign")
    url = start_dashboard(processes, settings, api.base_url)
    sign_in(browser, url)
    wait_until(lambda: "Winners" in shown_metrics(browser), 30, "the Live page")
    wait_until(lambda: browser.get_cookie("fcfs_dashboard"), 10, "the session cookie")
    for address in (url, f"{url}/?campaign={campaign_id}"):  # a reload, and a link opened anew
        browser.get(address)
        wait_until(lambda: "Winners" in shown_metrics(browser), 60, f"{address} signed in without a password")
        assert not browser.find_elements(By.CSS_SELECTOR, 'input[type="password"]')
    assert "cookie campaign" in page_text(browser)
    stolen = browser.get_cookie("fcfs_dashboard")
    click(browser, "button", "Sign out")
    wait_until(lambda: browser.find_elements(By.CSS_SELECTOR, 'input[type="password"]'), 30, "the sign-in form")
    wait_until(lambda: browser.get_cookie("fcfs_dashboard") is None, 10, "the cookie cleared")
    assert stolen is not None
    browser.add_cookie({"name": "fcfs_dashboard", "value": stolen["value"], "path": "/"})  # kept by someone
    browser.get(url)
    wait_until(lambda: browser.find_elements(By.CSS_SELECTOR, 'input[type="password"]'), 60, "the sign-in form")
    time.sleep(2)
    assert not shown_metrics(browser)  # signed out: the old cookie is revoked
