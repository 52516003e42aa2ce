"""Run the participation worker: `python -m worker [--drain] [--group NAME]`."""

from __future__ import annotations

import argparse
import logging
import sys

from fcfs.db import make_engine
from fcfs.settings import get_settings
from worker import metrics
from worker.worker import ParticipationWorker


def main() -> int:
    parser = argparse.ArgumentParser(description="Decide participation requests from Kafka, in log order.")
    parser.add_argument("--drain", action="store_true", help="exit once every assigned partition is caught up")
    parser.add_argument("--group", help="consumer group (default: KAFKA_CONSUMER_GROUP)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s worker %(message)s", stream=sys.stderr)
    settings = get_settings()
    settings.check_secrets(logging.getLogger("worker"))
    engine = make_engine(isolation_level="READ COMMITTED", pool_size=2)
    metrics.serve(settings.worker_metrics_host, settings.worker_metrics_port)
    worker = ParticipationWorker(settings, engine, group=args.group, drain=args.drain)
    worker.install_signal_handlers()
    worker.run()
    engine.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main())
