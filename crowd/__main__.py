"""`python -m crowd --campaign ID --users N --seconds T [...]`: a storm through the real door.

Or `python -m crowd --run ID`: the run the admin API created (the Control page's "Start the crowd").
Prints what it measured once a second and a summary at the end; the dashboard reads the same figures
from the database. Ctrl-C, SIGTERM or the dashboard's Stop button stop it: the clicks not yet sent are
not sent, the answers still due are waited for (at most DRAIN_S).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import logging
import random
import resource
import signal
import sys
from functools import partial

from sqlalchemy import Engine, select

from crowd.plan import Plan
from crowd.runner import WAIT_CONNECTIONS, Crowd, Door, Report, Tally
from crowd.store import claim, finish, record
from fcfs.crowd_runs import (
    MAX_CONNECTIONS,
    MAX_REPEAT_SHARE,
    MAX_SECONDS,
    MAX_USERS,
    MAX_WAIT_SHARE,
    SHAPES,
    CrowdRunning,
    RunStatus,
    create_run,
    get_run,
    is_loopback,
)
from fcfs.db import make_engine, utcnow
from fcfs.schema import Channel, campaign
from fcfs.settings import Settings, get_settings
from fcfs.simulated import SimulationProofs, simulated_user
from fcfs.tokens import mint

log = logging.getLogger("crowd")
# each run's users: a fresh block of the simulated range (never real users), apart from bulk loads' first ones
FIRST_USER_IDS = (simulated_user(2**40), simulated_user(2**51))


class CannotRun(Exception):
    """The run cannot start; the message says why (recorded on the run)."""


def door_for(settings: Settings, engine: Engine, campaign_id: int, target: str) -> Door:
    """The campaign's own door (Kafka or synchronous) at `target`, with a token per user if the door
    wants them (USER_AUTH=jwt: signed with JWT_SECRET, the only key a crowd can sign with)."""
    if not is_loopback(target) and not settings.crowd_allow_remote:
        raise CannotRun(
            f"{target} is not this machine: the crowd sends only to loopback unless CROWD_ALLOW_REMOTE=true"
        )
    with engine.connect() as conn:
        mode = conn.scalar(select(campaign.c.mode).where(campaign.c.id == campaign_id))
    if mode is None:
        raise CannotRun(f"campaign {campaign_id} does not exist")
    sync = Channel(mode) is Channel.SYNC
    url = f"{target}/api/campaigns/{campaign_id}/participation{'-sync' if sync else ''}"
    token_for = None
    if settings.user_auth == "jwt":
        if not settings.jwt_secret.get_secret_value():
            raise CannotRun("USER_AUTH=jwt without JWT_SECRET: the crowd cannot sign its users' tokens")
        token_for = partial(mint, settings, ttl_s=int(MAX_SECONDS) + 600)
    return Door(url, 200 if sync else 202, SimulationProofs(settings.request_id_secret.get_secret_value()), token_for)


def progress_line(report: Report, planned: int) -> str:
    p = report.second_percentiles
    refusals = ", ".join(f"{k} {v:,}" for k, v in sorted(report.answers.items()) if not k.startswith("20"))
    latency = f"p50 {p.p50} ms p95 {p.p95} ms p99 {p.p99} ms" if p.p50 is not None else "no answers"
    return (
        f"sent {report.sent:,}/{planned:,} (+{report.second.sent:,}/s) accepted {report.accepted:,} "
        f"refused {report.refused:,} no answer {report.failed:,}; this second: {latency}; "
        f"behind schedule {report.behind_s:.2f} s"
        + (f"; refusals: {refusals}" if refusals else "")
        + (f"; {waiting_line(report)}" if report.waiting or report.outcomes else "")
    )


def waiting_line(report: Report) -> str:
    t = report.time_to_outcome
    learned = ", ".join(f"{k} {v:,}" for k, v in sorted(report.outcomes.items()))
    took = f"p50 {t.p50} ms p95 {t.p95} ms p99 {t.p99} ms max {t.max} ms" if t.p50 is not None else "none yet"
    return f"waiting {report.waiting:,}, outcomes {learned or 'none yet'}; click to outcome {took}"


async def report_every_second(engine: Engine, run_id: int, crowd: Crowd, tally: Tally, planned: int) -> None:
    """Once a second: the figures into the database (a database away does not stop the crowd: the
    next second reports the totals again) and on stdout; an operator's stop request read back."""
    loop = asyncio.get_running_loop()
    next_at = loop.time() + 1
    while True:
        await asyncio.sleep(max(next_at - loop.time(), 0))
        next_at += 1
        report = tally.report()
        second = utcnow().replace(microsecond=0) - dt.timedelta(seconds=1)
        log.info("%s", progress_line(report, planned))
        try:
            if await asyncio.to_thread(record, engine, run_id, report, second):
                log.info("stop requested")
                crowd.stop.set()
        except Exception as exc:  # noqa: BLE001 - keep the storm going; the next second reports again
            log.warning("could not record the second: %s", exc)


async def storm(engine: Engine, run_id: int, crowd: Crowd, tally: Tally, planned: int) -> tuple[bool, Report]:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, crowd.stop.set)
    reporter = asyncio.create_task(report_every_second(engine, run_id, crowd, tally, planned))
    try:
        completed = await crowd.run()
    finally:
        reporter.cancel()
    report = tally.report()
    second = utcnow().replace(microsecond=0)
    try:
        await asyncio.to_thread(record, engine, run_id, report, second)  # the last part of a second
    except Exception as exc:  # noqa: BLE001 - finish() stores the totals again
        log.warning("could not record the last second: %s", exc)
    return completed, report


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m crowd", description=__doc__.split("\n\n")[0])
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--campaign", type=int, help="the campaign the crowd takes part in")
    which.add_argument("--run", type=int, help="run a crowd the admin API created (POST /api/admin/crowd)")
    parser.add_argument("--users", type=int, default=10_000, help=f"distinct users, at most {MAX_USERS:,}")
    parser.add_argument("--seconds", type=float, default=10.0, help=f"how long, at most {MAX_SECONDS:g} s")
    parser.add_argument(
        "--repeat-share",
        type=float,
        default=0.1,
        help=f"share of clicks that are a user clicking again (≤ {MAX_REPEAT_SHARE})",
    )
    parser.add_argument("--shape", choices=SHAPES, default="flat", help="flat: evenly; rush: most at the opening")
    parser.add_argument(
        "--connections", type=int, default=200, help=f"requests in flight at most (≤ {MAX_CONNECTIONS})"
    )
    parser.add_argument(
        "--wait-share",
        type=float,
        default=0.0,
        help="share of users who, after their 202, wait for the outcome with the held look-up (0 to 1)",
    )
    parser.add_argument(
        "--wait-connections",
        type=int,
        default=WAIT_CONNECTIONS,
        help="the waiting users' connections at most (one per held look-up; more wait for one)",
    )
    parser.add_argument("--target", help="the API's base URL (default: CROWD_TARGET_URL, else 127.0.0.1:API_PORT)")
    parser.add_argument("--seed", type=int, help="the schedule's random seed (default: a new one)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s", stream=sys.stdout)
    args = parse_args(argv)
    settings = get_settings()
    engine = make_engine()
    seed = args.seed if args.seed is not None else random.randrange(2**32)
    rng = random.Random(seed)
    if args.run is not None:
        row = get_run(engine, args.run)
        if row is None:
            log.error("no crowd run %d", args.run)
            return 2
        run_id, campaign_id, target, connections = row.id, row.campaign_id, row.target_url, row.connections
        wait_share = row.wait_share
        plan = Plan(row.users, row.seconds, row.repeat_share, row.shape, rng.randrange(*FIRST_USER_IDS))
    else:
        if not 1 <= args.connections <= MAX_CONNECTIONS:
            log.error("--connections: from 1 to %d", MAX_CONNECTIONS)
            return 2
        try:
            plan = Plan(args.users, args.seconds, args.repeat_share, args.shape, rng.randrange(*FIRST_USER_IDS))
        except ValueError as exc:
            log.error("%s", exc)
            return 2
        if not 0 <= args.wait_share <= MAX_WAIT_SHARE or args.wait_connections < 1:
            log.error("--wait-share: from 0 to %g; --wait-connections: at least 1", MAX_WAIT_SHARE)
            return 2
        campaign_id, connections, wait_share = args.campaign, args.connections, args.wait_share
        target = (args.target or settings.crowd_target).rstrip("/")
        try:
            run_id = create_run(
                engine,
                campaign_id=campaign_id,
                target_url=target,
                users=plan.users,
                seconds=plan.seconds,
                repeat_share=plan.repeat_share,
                shape=plan.shape,
                connections=connections,
                wait_share=wait_share,
            )
        except CrowdRunning as exc:
            log.error("%s (one crowd at a time)", exc)
            return 3
    if not claim(engine, run_id):
        log.error("crowd run %d is not waiting to start", run_id)
        return 2
    log.info(
        "crowd run %d: %s users, %s clicks (%.0f%% repeats) over %g s (%s) on campaign %d at %s, %d connections",
        run_id,
        f"{plan.users:,}",
        f"{plan.clicks_total:,}",
        plan.repeat_share * 100,
        plan.seconds,
        plan.shape,
        campaign_id,
        target,
        connections,
    )
    report = None
    try:
        door = door_for(settings, engine, campaign_id, target)
        tally = Tally()
        allow_open_files(connections + (args.wait_connections if wait_share else 0))
        crowd = Crowd(door, plan.clicks(seed), connections, tally, wait_share, args.wait_connections)
        completed, report = asyncio.run(storm(engine, run_id, crowd, tally, plan.clicks_total))
    except CannotRun as exc:
        log.error("%s", exc)
        finish(engine, run_id, RunStatus.FAILED, None, str(exc))
        return 1
    except Exception as exc:
        log.exception("crowd run %d failed", run_id)
        finish(engine, run_id, RunStatus.FAILED, report, f"{type(exc).__name__}: {exc}"[:2000])
        return 1
    status = RunStatus.FINISHED if completed else RunStatus.STOPPED
    finish(engine, run_id, status, report)
    o = report.overall
    log.info(
        "crowd run %d %s: sent %s of %s, accepted %s, refused %s, no answer %s; latency p50 %s ms, p95 %s ms, "
        "p99 %s ms, max %s ms; from %d source address(es); answers %s",
        run_id,
        status.value,
        f"{report.sent:,}",
        f"{plan.clicks_total:,}",
        f"{report.accepted:,}",
        f"{report.refused:,}",
        f"{report.failed:,}",
        o.p50,
        o.p95,
        o.p99,
        o.max,
        crowd.addresses,
        report.answers,
    )
    if wait_share:
        log.info("%g of the users waited for their outcome: %s", wait_share, waiting_line(report))
    return 0


def allow_open_files(connections: int) -> None:
    """As many open files as the connections need (up to the system's hard limit)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = connections + 256
    if soft != resource.RLIM_INFINITY and soft < wanted:
        resource.setrlimit(
            resource.RLIMIT_NOFILE, (wanted if hard == resource.RLIM_INFINITY else min(wanted, hard), hard)
        )


if __name__ == "__main__":
    sys.exit(main())
