"""Fixtures on the real stack: a test database migrated from scratch and a fresh topic per test."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url

from fcfs.db import make_engine, server_url
from fcfs.kafka import delete_topics, ensure_topics
from fcfs.provision import ensure_database, migrate
from fcfs.settings import Settings
from tests.support import ADMIN_TOKEN
from tests.support.processes import Api, Processes


def _test_database_url() -> str:
    url = make_url(os.environ.get("DATABASE_URL", "mysql+pymysql://fcfs:fcfs@127.0.0.1:3306/fcfs"))
    return url.set(database=os.environ.get("TEST_DATABASE", "fcfs_test")).render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def base_settings() -> Settings:
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        app_env="test",
        database_url=_test_database_url(),
        kafka_bootstrap_servers=os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092"),
        admin_token=SecretStr(ADMIN_TOKEN),
        request_id_secret=SecretStr("test-request-id-secret"),
        worker_metrics_port=0,
        participation_rate_limit=0,  # one test client is one address replaying users; the limits' tests set them
        participation_user_rate_limit=0,
    )


@pytest.fixture(scope="session")
def database(base_settings: Settings) -> Iterator[Engine]:
    """The test database, dropped and migrated from scratch once per run."""
    server, name = server_url(base_settings.database_url)
    admin = create_engine(server)
    with admin.begin() as conn:
        conn.execute(text(f"DROP DATABASE IF EXISTS `{name}`"))
    admin.dispose()
    ensure_database(base_settings.database_url)
    migrate(base_settings.database_url)
    engine = make_engine(base_settings.database_url, isolation_level="READ COMMITTED", pool_size=5)
    yield engine
    engine.dispose()


@pytest.fixture
def settings(base_settings: Settings, database: Engine) -> Iterator[Settings]:
    """Settings with a topic (and DLQ and consumer group) of this test's own."""
    suffix = uuid.uuid4().hex[:10]
    settings = base_settings.model_copy(
        update={"kafka_topic": f"test-participation-{suffix}", "kafka_consumer_group": f"test-worker-{suffix}"}
    )
    ensure_topics(settings)
    yield settings
    delete_topics(settings, [settings.kafka_topic, settings.dlq_topic])


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[Processes]:
    procs = Processes(tmp_path)
    yield procs
    procs.stop_all()


@pytest.fixture
def api(settings: Settings, processes: Processes) -> Api:
    """One API process serving every route, on this test's settings."""
    return processes.api(settings)


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[webdriver.Chrome]:
    """Headless Chromium with a profile of its own."""
    yield from _chromium(tmp_path)


def _chromium(tmp_path: Path) -> Iterator[webdriver.Chrome]:
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
