"""The releaser process: wins not claimed in time are released and their units go to the next in line.

python -m batch.releaser [--interval S] [--chunk N]

Every `--interval` seconds (CLAIM_RELEASE_INTERVAL_S, default 1) it finds the campaigns with wins past their claim
deadline (one indexed query on the small `claim` table) and releases them, at most `--chunk` per transaction, each
transaction under the campaign's row lock (fcfs/claims.py): a unit released goes to the campaign's earliest FAIL, or
back to the stock. One releaser is enough; two are safe (they queue on the campaign's lock, and a win released is
not due any more). Killed at any point, it loses nothing: a transaction not committed is as if never begun.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading

from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError

from fcfs.claims import CHUNK, Released, due_campaigns, release_campaign
from fcfs.db import make_engine, short_error, utcnow
from fcfs.settings import get_settings

log = logging.getLogger("batch.releaser")


def release_due(engine: Engine, *, chunk: int = CHUNK, hold_s: float = 0.0) -> list[Released]:
    """Release every win past its deadline now, campaign by campaign, `chunk` per transaction."""
    done = []
    now = utcnow()
    for campaign_id in due_campaigns(engine, now):
        while True:
            released = release_campaign(engine, campaign_id, now, chunk=chunk, hold_s=hold_s)
            if released.released:
                done.append(released)
                log.info(
                    "campaign %d: %d win(s) released, %d promoted, %d back to the stock",
                    campaign_id,
                    released.released,
                    released.promoted,
                    released.restocked,
                )
            if released.released < chunk:
                break
    return done


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m batch.releaser", description=__doc__.splitlines()[0])
    parser.add_argument("--interval", type=float, default=None, help="seconds (default CLAIM_RELEASE_INTERVAL_S)")
    parser.add_argument("--chunk", type=int, default=CHUNK, help="wins released per transaction at most")
    parser.add_argument(
        "--hold-ms", type=int, default=0, help="keep each transaction open this long mid-release (fault tests)"
    )
    args = parser.parse_args(argv)
    settings = get_settings()
    args.interval = settings.claim_release_interval_s if args.interval is None else args.interval
    if not 0.05 <= args.interval <= 60 or not 1 <= args.chunk <= 10_000 or not 0 <= args.hold_ms <= 60_000:
        parser.error("--interval 0.05..60 s, --chunk 1..10000, --hold-ms 0..60000")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s", stream=sys.stderr)
    engine = make_engine(isolation_level="READ COMMITTED", pool_size=2)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    log.info("releaser up: every %.2f s, %d per transaction", args.interval, args.chunk)
    failing = False
    while not stop.is_set():
        try:
            release_due(engine, chunk=args.chunk, hold_s=args.hold_ms / 1000)
            if failing:
                log.info("releaser: the database answers again")
            failing = False
        except DBAPIError as exc:  # the database away: try again next interval (nothing half done)
            if not failing:
                log.warning("releaser: cannot release: %s", short_error(exc))
            failing = True
        stop.wait(args.interval)
    engine.dispose()
    log.info("releaser stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
