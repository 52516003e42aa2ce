"""A real browser (headless Chromium) watches the Live page fill up during a bulk load, without a reload."""

from __future__ import annotations

import os
import shutil
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By

from backend.serve import api_command
from fcfs.settings import Settings
from tests.support import ADMIN_TOKEN, ROOT, Processes, free_port, settings_env, wait_until

# Where the screenshot goes: a temporary folder, unless scripts/screenshot.sh asks for the README's image.
SCREENSHOT_ENV = "DASHBOARD_SCREENSHOT"


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[webdriver.Chrome]:
    chromium = shutil.which("chromium")
    driver_path = shutil.which("chromedriver")
    assert chromium and driver_path, "install the Debian packages chromium and chromium-driver"
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--disable-quic",
        "--window-size=1400,1500",
        f"--user-data-dir={tmp_path / 'p'}",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def shown_metrics(driver: webdriver.Chrome) -> dict[str, str]:
    found = {}
    for metric in driver.find_elements(By.CSS_SELECTOR, '[data-testid="stMetric"]'):
        label = metric.find_elements(By.CSS_SELECTOR, '[data-testid="stMetricLabel"]')
        value = metric.find_elements(By.CSS_SELECTOR, '[data-testid="stMetricValue"]')
        if label and value:
            found[label[0].text.strip()] = value[0].text.strip()
    return found


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
        settings_env(settings, API_BASE_URL=api.base_url, ADMIN_TOKEN=ADMIN_TOKEN),
    )
    url = f"http://127.0.0.1:{port}"
    wait_until(lambda: _up(url), 60, "the dashboard to serve")

    sign_in(browser, f"{url}/?campaign={campaign_id}")
    wait_until(lambda: shown_metrics(browser).get("Winners") == "0", 60, "the Live page to show the campaign")
    browser.execute_script("window.__sameDocument = 'yes'")  # gone if the page reloads

    with api.client(admin=True) as client:
        for start in (1, 30_001):
            assert (
                client.post(
                    "/api/admin/test/participate-bulk",
                    json={"campaignId": campaign_id, "count": 15_000, "userIdStart": start},
                ).status_code
                == 202
            )
    processes.worker(settings, WORKER_BATCH_SIZE="20")  # small batches: a climb lasting seconds

    seen = set()

    def sold_out() -> bool:
        winners = shown_metrics(browser).get("Winners")
        seen.add(winners)
        return winners == "20,000"

    wait_until(sold_out, 90, "the winner count to reach the stock", interval_s=0.2)
    assert browser.execute_script("return window.__sameDocument") == "yes"  # no reload happened
    climbing = sorted(int(w.replace(",", "")) for w in seen if w)
    assert any(0 < w < 20_000 for w in climbing), f"no count between 0 and the stock was shown: {climbing}"
    wait_until(lambda: shown_metrics(browser).get("Consumer lag") == "0", 60, "the lag to drain", interval_s=0.5)
    time.sleep(2.5)  # let the curves take the last seconds
    final = shown_metrics(browser)
    assert final["Stock left"] == "0 / 20,000"
    assert final["Duplicates"] == "0" and final["Fails (sold out)"] == "10,000"
    assert len(browser.find_elements(By.CSS_SELECTOR, ".js-plotly-plot")) >= 3
    screenshot = Path(os.environ.get(SCREENSHOT_ENV) or tmp_path / "dashboard-live.png")
    screenshot.parent.mkdir(parents=True, exist_ok=True)
    browser.save_screenshot(str(screenshot))
    assert screenshot.stat().st_size > 10_000
    print(f"winner counts seen on the page without reloading: {climbing}")


def _up(url: str) -> bool:
    try:
        return httpx.get(f"{url}/_stcore/health", timeout=1).status_code == 200
    except httpx.TransportError:
        return False


def test_pages_recover_by_themselves_when_the_backend_comes_back(
    settings: Settings, processes: Processes, browser: webdriver.Chrome
) -> None:
    api_port = free_port()
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
        ],
        settings_env(settings, API_BASE_URL=f"http://127.0.0.1:{api_port}", ADMIN_TOKEN=ADMIN_TOKEN),
    )
    url = f"http://127.0.0.1:{port}"
    wait_until(lambda: _up(url), 60, "the dashboard to serve")
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
