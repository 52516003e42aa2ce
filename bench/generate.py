"""Fill the database with realistic participation history, fast, for statistics and experiments.

N campaigns a day over D days, each a one-day FCFS event decided by the worker's rule (fcfs/history.py),
bulk-loaded with LOAD DATA LOCAL INFILE (multi-row INSERTs where the server refuses it).

    python -m bench.generate --days 30 --campaigns-per-day 10 --rows 5000000 [--last-day YYYY-MM-DD]
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import sys

from sqlalchemy import create_engine

from fcfs.days import local_today
from fcfs.history import generate_history
from fcfs.settings import get_settings


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--campaigns-per-day", type=int, default=10)
    parser.add_argument("--rows", type=int, default=1_000_000, help="about this many history rows in all")
    parser.add_argument("--last-day", type=dt.date.fromisoformat, help="default: yesterday")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s", stream=sys.stderr)
    settings = get_settings()
    engine = create_engine(settings.database_url)
    result = generate_history(
        engine,
        last_day=args.last_day or local_today(settings.tz) - dt.timedelta(days=1),
        days=args.days,
        campaigns_per_day=args.campaigns_per_day,
        rows=args.rows,
        tz=settings.tz,
        seed=args.seed,
    )
    print(
        f"{result.campaigns} campaigns, {result.rows:,} rows in {result.seconds:.1f} s "
        f"({result.rows_per_s:,.0f} rows/s)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
