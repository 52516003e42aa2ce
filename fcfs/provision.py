"""Prepare what the processes need: the database (created and migrated) and the Kafka topics.

python -m fcfs.provision [--skip-kafka] [--skip-db]
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError

from fcfs.db import server_url
from fcfs.kafka import ensure_topics
from fcfs.settings import Settings, get_settings

log = logging.getLogger(__name__)
ROOT = Path(__file__).resolve().parent.parent


def ensure_database(url: str, timeout_s: float = 60.0) -> None:
    """Create the database of `url` if missing, waiting for the server to come up."""
    server, name = server_url(url)
    engine = create_engine(server, pool_pre_ping=True)
    deadline = time.monotonic() + timeout_s
    try:
        while True:
            try:
                with engine.begin() as conn:
                    conn.execute(text(f"CREATE DATABASE IF NOT EXISTS `{name}` CHARACTER SET utf8mb4"))
                return
            except OperationalError as exc:
                if time.monotonic() > deadline:
                    raise
                log.info("waiting for the database: %s", exc.orig)
                time.sleep(1)
    finally:
        engine.dispose()


def migrate(url: str) -> None:
    """Bring the schema to the newest Alembic revision."""
    config = Config(str(ROOT / "alembic.ini"))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    config.attributes["configure_logger"] = False
    command.upgrade(config, "head")


def provision(settings: Settings, *, db: bool = True, kafka: bool = True) -> None:
    if db:
        ensure_database(settings.database_url)
        migrate(settings.database_url)
    if kafka:
        ensure_topics(settings)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--skip-kafka", action="store_true")
    parser.add_argument("--skip-db", action="store_true")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    provision(get_settings(), db=not args.skip_db, kafka=not args.skip_kafka)
    log.info("provisioned")


if __name__ == "__main__":
    main()
