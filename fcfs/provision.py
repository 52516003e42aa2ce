"""Prepare what the processes need: the database (created and migrated) and the Kafka topics; grow the
participation topic online.

python -m fcfs.provision [--skip-kafka] [--skip-db]
python -m fcfs.provision --partitions N     # add partitions to the live topic (never fewer)
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

from alembic import command
from alembic.config import Config
from confluent_kafka.admin import NewPartitions  # type: ignore[attr-defined]
from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError

from fcfs.db import make_engine, server_url
from fcfs.kafka import admin_client, ensure_topics, wait_for_leaders
from fcfs.placement import pin_unplaced
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


class CannotShrink(ValueError):
    """Kafka cannot take partitions away from a topic."""


def grow_topic(settings: Settings, partitions: int, timeout_s: float = 60.0) -> int:
    """Give the participation topic `partitions` partitions, online; returns how many it had.

    Campaigns keep their partitions: those still going by key are first pinned to their key's partition
    (adding partitions changes where a key hashes to), then the partitions are added. Workers are assigned
    the new ones by the group's rebalance; new campaigns are placed on them (they carry no load yet).
    """
    topic = settings.kafka_topic
    admin = admin_client(settings)
    meta = admin.list_topics(topic, timeout=10).topics.get(topic)
    if meta is None or meta.error is not None:
        raise LookupError(f"topic {topic} does not exist: run python -m fcfs.provision first")
    current = len(meta.partitions)
    if partitions < current:
        raise CannotShrink(
            f"refused: {topic} has {current} partitions and Kafka cannot remove partitions (each holds "
            f"campaigns' requests in their order); to have fewer, create a new topic and move to it between events"
        )
    if partitions == current:
        log.info("%s already has %d partitions", topic, current)
        return current
    engine = make_engine(settings.database_url, pool_size=1)
    try:
        pin_unplaced(engine, current)
    finally:
        engine.dispose()
    for future in admin.create_partitions([NewPartitions(topic, partitions)], operation_timeout=30).values():
        future.result()
    wait_for_leaders(admin, [topic], time.monotonic() + timeout_s, partitions)
    log.info("%s grown from %d to %d partitions", topic, current, partitions)
    return current


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--skip-kafka", action="store_true")
    parser.add_argument("--skip-db", action="store_true")
    parser.add_argument(
        "--partitions", type=int, metavar="N", help="grow the participation topic to N partitions (online)"
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    settings = get_settings()
    if args.partitions is not None:
        try:
            grow_topic(settings, args.partitions)
        except (CannotShrink, LookupError) as exc:
            raise SystemExit(str(exc)) from None
        return
    provision(settings, db=not args.skip_db, kafka=not args.skip_kafka)
    log.info("provisioned")


if __name__ == "__main__":
    main()
