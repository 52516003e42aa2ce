"""The daily aggregation (I6), its job records, the scheduler's catch-up and the statistics API."""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Iterator
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine, delete, func, select, text
from sqlalchemy.exc import DBAPIError

from batch.scheduler import catch_up, days_to_catch_up
from fcfs.aggregation import (
    JOB_NAME,
    abandon_orphaned_jobs,
    aggregate_day,
    lock_name,
    prune_job_history,
    run_job,
    start_job,
)
from fcfs.days import day_bounds, local_today
from fcfs.db import make_engine, utcnow
from fcfs.history import generate_history
from fcfs.schema import (
    JobStatus,
    JobTrigger,
    batch_job_execution,
    campaign,
    campaign_second,
    campaign_stats,
    participation_history,
)
from fcfs.settings import Settings
from tests.support import settings_env, wait_until
from tests.support.ledger import assert_counters_match_history, campaign_row, history_counts
from tests.support.processes import Api, Processes

# A stretch of the past no other test writes history into.
GENERATED_LAST_DAY = dt.date(2025, 3, 10)


def _stats_rows(engine: Engine, day: dt.date) -> list[tuple[Any, ...]]:
    with engine.connect() as conn:
        return [
            tuple(r)
            for r in conn.execute(
                select(campaign_stats).where(campaign_stats.c.stats_date == day).order_by(campaign_stats.c.campaign_id)
            )
        ]


def _jobs(engine: Engine, day: dt.date) -> list[Any]:
    with engine.connect() as conn:
        return list(
            conn.execute(
                select(batch_job_execution)
                .where(batch_job_execution.c.target_date == day)
                .order_by(batch_job_execution.c.id)
            )
        )


def _run_via_api(api: Api, day: dt.date) -> dict[str, Any]:
    with api.client(admin=True) as client:
        r = client.post("/api/admin/batch/aggregate", params={"date": day.isoformat()})
        assert r.status_code == 202, r.text
        started = r.json()["data"]
        assert started["status"] == "STARTED" and started["date"] == day.isoformat()

        def finished() -> dict[str, Any] | None:
            job = client.get(f"/api/admin/batch/status/{started['jobExecutionId']}").json()["data"]
            return job if job["status"] != "STARTED" else None

        job: dict[str, Any] = wait_until(finished, 120, "the aggregation to finish", interval_s=0.2)
        return job


@pytest.fixture(scope="module")
def generated(database: Engine, base_settings: Settings) -> dict[str, Any]:
    """Four days of generated history, three campaigns a day."""
    result = generate_history(
        database, last_day=GENERATED_LAST_DAY, days=4, campaigns_per_day=3, rows=24_000, tz=base_settings.tz, seed=3
    )
    return {"rows": result.rows, "days": [GENERATED_LAST_DAY - dt.timedelta(days=i) for i in range(3, -1, -1)]}


def _a_day_that_lasts(tz: ZoneInfo, minutes: float) -> dt.date:
    """Today in `tz`, once at least `minutes` of it are left (waiting out a midnight closer than that)."""
    now = dt.datetime.now(dt.UTC)
    _, end = day_bounds(local_today(tz, now), tz)
    left_s = (end - now.replace(tzinfo=None)).total_seconds()
    if left_s < minutes * 60:
        time.sleep(left_s + 1)
    return local_today(tz)


def test_batched_numbers_equal_raw_numbers_for_data_from_the_real_flow(
    api: Api, settings: Settings, database: Engine, processes: Processes
) -> None:
    today = _a_day_that_lasts(settings.tz, minutes=2)  # the requests are all decided within this local day
    campaigns = [api.create_campaign(total_stock=stock) for stock in (5, 40)]
    with api.client(admin=True) as client:
        for cid in campaigns:
            for start in (1, 51):  # 100 users, the second half twice: duplicates too
                r = client.post(
                    "/api/admin/test/participate-bulk", json={"campaignId": cid, "count": 100, "userIdStart": start}
                )
                assert r.status_code == 202
    assert processes.worker(settings, "--drain").wait(120) == 0
    day_start, day_end = day_bounds(today, settings.tz)
    with database.connect() as conn:
        h = participation_history.c
        first_decided, last_decided = conn.execute(
            select(func.min(h.decided_at), func.max(h.decided_at)).where(h.campaign_id.in_(campaigns))
        ).one()
    assert day_start <= first_decided <= last_decided < day_end, (today, first_decided, last_decided)

    job = _run_via_api(api, today)
    assert job["status"] == "COMPLETED", job
    with api.client(admin=True) as client:
        daily = client.get("/api/admin/stats/daily", params={"date": today.isoformat()}).json()["data"]
        raw = client.get("/api/admin/stats/raw", params={"date": today.isoformat()}).json()["data"]
    assert daily["method"] == "BATCH_AGGREGATED" and raw["method"] == "RAW_QUERY"
    assert daily["queryTimeMs"] > 0 and raw["queryTimeMs"] > 0  # measured, not a constant
    batched_by_id = {c["campaignId"]: c for c in daily["campaigns"]}
    raw_by_id = {c["campaignId"]: c for c in raw["campaigns"]}
    assert batched_by_id.keys() == raw_by_id.keys()
    for cid in raw_by_id:  # campaign by campaign, the same numbers
        for key in ("campaignName", "successCount", "failCount", "duplicateCount", "totalCount", "successRate"):
            assert batched_by_id[cid][key] == raw_by_id[cid][key], (cid, key)
    assert daily["summary"] == raw["summary"]
    for cid in campaigns:
        counts = history_counts(database, cid)
        mine = batched_by_id[cid]
        assert (mine["successCount"], mine["failCount"], mine["duplicateCount"]) == (
            counts["SUCCESS"],
            counts["FAIL"],
            counts["DUPLICATE"],
        )
        assert mine["totalCount"] == 200 and mine["uniqueUsers"] == 150
        with database.connect() as conn:
            sold_out_at = conn.scalar(select(campaign.c.sold_out_at).where(campaign.c.id == cid))
            first = conn.scalar(
                select(func.min(participation_history.c.requested_at)).where(participation_history.c.campaign_id == cid)
            )
        assert sold_out_at is not None  # 150 users for 5 and 40 items
        assert mine["sellOutSeconds"] == round(max((sold_out_at - first).total_seconds(), 0.0), 6)


def test_rerunning_a_date_gives_identical_rows_and_two_job_records(
    generated: dict[str, Any], database: Engine, settings: Settings
) -> None:
    """The second run recomputes every row from the history (a row spoiled between the runs comes back
    exact), and its job record names each campaign with the day's number of requests."""
    day = generated["days"][1]
    runs_before = len(_jobs(database, day))
    first_id, first = aggregate_day(database, day, JobTrigger.MANUAL, settings.tz)
    rows_first = _stats_rows(database, day)
    assert len(rows_first) == 3
    spoiled = rows_first[0][1]  # campaign_id
    with database.begin() as conn:
        conn.execute(
            campaign_stats.update()
            .where(campaign_stats.c.stats_date == day, campaign_stats.c.campaign_id == spoiled)
            .values(success_count=0, fail_count=0, total_count=0, unique_users=0, sell_out_seconds=None)
        )
        conn.execute(
            delete(campaign_stats).where(
                campaign_stats.c.stats_date == day, campaign_stats.c.campaign_id == rows_first[1][1]
            )
        )
    second_id, second = aggregate_day(database, day, JobTrigger.MANUAL, settings.tz)
    assert first is second is JobStatus.COMPLETED
    assert _stats_rows(database, day) == rows_first
    jobs = _jobs(database, day)
    assert len(jobs) == runs_before + 2
    assert [j.id for j in jobs[-2:]] == [first_id, second_id]
    start, end = day_bounds(day, settings.tz)
    with database.connect() as conn:
        per_campaign: dict[int, int] = dict(
            conn.execute(
                select(participation_history.c.campaign_id, func.count())
                .where(participation_history.c.requested_at >= start, participation_history.c.requested_at < end)
                .group_by(participation_history.c.campaign_id)
            ).all()
        )
    expected = [{"campaignId": cid, "status": "OK", "totalCount": n} for cid, n in sorted(per_campaign.items())]
    assert [r[1] for r in rows_first] == sorted(per_campaign)
    for job in jobs[-2:]:
        assert (job.status, job.campaigns_total, job.campaigns_failed) == (JobStatus.COMPLETED, 3, 0)
        assert json.loads(job.campaign_results) == expected


def test_a_day_whose_history_is_gone_loses_its_statistics_row(database: Engine, settings: Settings) -> None:
    """I6: each run recomputes a campaign-day from the history, so a day without history has no row."""
    day = dt.date(2001, 2, 3)
    start, _ = day_bounds(day, settings.tz)
    with database.begin() as conn:
        campaign_id = int(
            conn.execute(
                campaign.insert().values(
                    name="i6 campaign",
                    total_stock=5,
                    current_stock=3,
                    success_count=2,
                    duplicate_count=1,
                    created_at=start,
                )
            ).lastrowid
        )
        conn.execute(
            participation_history.insert(),
            [
                {
                    "request_id": f"i6-{campaign_id}-{i}",
                    "campaign_id": campaign_id,
                    "user_id": user,
                    "status": status,
                    "channel": "KAFKA",
                    "kafka_partition": 0,
                    "kafka_offset": i,
                    "requested_at": start + dt.timedelta(hours=1, seconds=i),
                    "decided_at": start + dt.timedelta(hours=1, seconds=i),
                }
                for i, (user, status) in enumerate([(1, "SUCCESS"), (2, "SUCCESS"), (1, "DUPLICATE")])
            ],
        )
    aggregate_day(database, day, JobTrigger.MANUAL, settings.tz)
    assert [(r.campaign_id, r.success_count, r.duplicate_count, r.total_count) for r in _stats_of(database, day)] == [
        (campaign_id, 2, 1, 3)
    ]
    with database.begin() as conn:  # the day's history goes (e.g. removed after a correction)
        conn.execute(delete(participation_history).where(participation_history.c.campaign_id == campaign_id))
    _, status = aggregate_day(database, day, JobTrigger.MANUAL, settings.tz)
    assert status is JobStatus.COMPLETED and _stats_of(database, day) == []


def _stats_of(engine: Engine, day: dt.date) -> list[Any]:
    with engine.connect() as conn:
        return list(conn.execute(select(campaign_stats).where(campaign_stats.c.stats_date == day)))


@pytest.fixture
def failing_campaign(database: Engine, generated: dict[str, Any]) -> Iterator[int]:
    """A database trigger that makes the aggregation of one campaign fail (the fault is in the test)."""
    day = generated["days"][2]
    with database.connect() as conn:  # the day's first generated campaign
        found = conn.scalar(
            select(campaign.c.id).where(campaign.c.name.like(f"{day.isoformat()} %")).order_by(campaign.c.id).limit(1)
        )
    assert found is not None
    victim = int(found)
    with database.begin() as conn:
        conn.execute(delete(campaign_stats).where(campaign_stats.c.stats_date == day))
        conn.execute(text("DROP TRIGGER IF EXISTS test_fail_stats"))
        conn.execute(
            text(
                "CREATE TRIGGER test_fail_stats BEFORE INSERT ON campaign_stats FOR EACH ROW "
                f"IF NEW.campaign_id = {victim} THEN "
                "SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'injected failure'; END IF"
            )
        )
    try:
        yield victim
    finally:
        with database.begin() as conn:
            conn.execute(text("DROP TRIGGER IF EXISTS test_fail_stats"))


def test_one_failing_campaign_makes_the_run_partial_and_a_rerun_completes_it(
    generated: dict[str, Any], database: Engine, settings: Settings, failing_campaign: int
) -> None:
    day = generated["days"][2]
    job_id, status = aggregate_day(database, day, JobTrigger.MANUAL, settings.tz)
    assert status is JobStatus.PARTIAL
    job = _jobs(database, day)[-1]
    assert job.id == job_id and job.status is JobStatus.PARTIAL
    assert f"campaign {failing_campaign}" in job.error and "injected failure" in job.error
    results = {r["campaignId"]: r for r in json.loads(job.campaign_results)}
    assert results[failing_campaign]["status"] == "FAILED"
    committed = {row[1] for row in _stats_rows(database, day)}
    assert failing_campaign not in committed
    assert len(committed) == 2  # the other campaigns' rows are committed

    with database.begin() as conn:  # remove the fault and run again
        conn.execute(text("DROP TRIGGER test_fail_stats"))
    _, status = aggregate_day(database, day, JobTrigger.MANUAL, settings.tz)
    assert status is JobStatus.COMPLETED
    assert {row[1] for row in _stats_rows(database, day)} == committed | {failing_campaign}


def test_a_run_that_fails_before_any_campaign_is_recorded_failed_and_frees_its_lock(
    database: Engine, settings: Settings
) -> None:
    day = dt.date(1, 1, 1)  # the API refuses it (DATE_OUT_OF_RANGE); its start in Asia/Seoul is before year 1 UTC
    job = start_job(database, day, JobTrigger.MANUAL)
    assert run_job(database, job, settings.tz) is JobStatus.FAILED
    recorded = _jobs(database, day)[-1]
    assert recorded.id == job.job_id and recorded.status is JobStatus.FAILED and "out of range" in recorded.error
    with database.connect() as conn:
        assert conn.scalar(text("SELECT GET_LOCK(:n, 0)"), {"n": lock_name(day)}) == 1  # released
        conn.execute(text("SELECT RELEASE_LOCK(:n)"), {"n": lock_name(day)})


def test_a_run_that_cannot_start_frees_its_lock_on_the_pooled_connection(database: Engine) -> None:
    """The date's lock is taken, then recording the run fails (a trigger refuses the insert): the connection
    goes back to the pool without the lock (closing a pooled connection does not end its session, so the
    lock would stay held there, and every later run of the date would be refused)."""
    day = dt.date(2002, 2, 2)
    engine = make_engine(database.url.render_as_string(hide_password=False), pool_size=1)
    with database.begin() as conn:
        conn.execute(
            text(
                "CREATE TRIGGER test_refuse_job BEFORE INSERT ON batch_job_execution FOR EACH ROW "
                "SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'injected failure'"
            )
        )
    try:
        with pytest.raises(DBAPIError, match="injected failure"):
            start_job(engine, day, JobTrigger.MANUAL)
        with database.connect() as conn:
            assert conn.scalar(text("SELECT IS_FREE_LOCK(:n)"), {"n": lock_name(day)}) == 1
    finally:
        engine.dispose()
        with database.begin() as conn:
            conn.execute(text("DROP TRIGGER IF EXISTS test_refuse_job"))


def test_many_manual_runs_hold_no_pooled_connection_and_are_bounded(
    settings: Settings, processes: Processes, database: Engine
) -> None:
    """20 dates asked at once while the runs are held still (the statistics table locked by the test): the
    API's pool of 3 connections is not where the waiting runs hold their locks, so it keeps answering (no 500
    for a pool run dry); past 8 runs running or waiting in the process it says so (429 BATCH_QUEUE_FULL)."""
    api = processes.api(settings, DB_POOL_SIZE="3", DB_MAX_OVERFLOW="0")
    days = [dt.date(2003, 3, 1) + dt.timedelta(days=n) for n in range(20)]
    with database.connect() as holder:
        holder.execute(text("LOCK TABLES campaign_stats WRITE"))  # every run waits at its first read of it
        try:
            with api.client(admin=True) as client:
                codes = [
                    client.post("/api/admin/batch/aggregate", params={"date": d.isoformat()}).status_code for d in days
                ]
                assert codes == [202] * 8 + [429] * 12, codes
                refused = client.post("/api/admin/batch/aggregate", params={"date": "2003-04-01"})
                assert (refused.status_code, refused.json()["errorCode"]) == (429, "BATCH_QUEUE_FULL")
                assert refused.headers["retry-after"] == "5"
                assert client.get("/api/admin/batch/history").status_code == 200  # the pool still serves
                assert client.get("/api/admin/campaigns").status_code == 200
        finally:
            holder.execute(text("UNLOCK TABLES"))
    with api.client(admin=True) as client:

        def ended() -> bool:
            jobs = client.get("/api/admin/batch/history").json()["data"]
            return all(j["status"] != "STARTED" for j in jobs if j["date"] in {d.isoformat() for d in days})

        wait_until(ended, 60, "the runs to end")
        again = client.post("/api/admin/batch/aggregate", params={"date": days[-1].isoformat()})
        assert again.status_code == 202, again.text  # the places are free again


def test_runs_left_started_by_a_stopped_process_are_marked_failed_at_start_up(database: Engine) -> None:
    orphan_day, running_day = dt.date(2001, 1, 1), dt.date(2001, 1, 2)
    with database.begin() as conn:
        ids = [
            conn.execute(
                batch_job_execution.insert().values(
                    job_name=JOB_NAME,
                    target_date=day,
                    trigger_type=JobTrigger.MANUAL,
                    status=JobStatus.STARTED,
                    started_at=utcnow(),
                )
            ).lastrowid
            for day in (orphan_day, running_day)
        ]
    with database.connect() as holder:  # another process is running this one
        assert holder.scalar(text("SELECT GET_LOCK(:n, 0)"), {"n": lock_name(running_day)}) == 1
        assert abandon_orphaned_jobs(database) == [ids[0]]
        holder.execute(text("SELECT RELEASE_LOCK(:n)"), {"n": lock_name(running_day)})
    assert [_jobs(database, day)[-1].status for day in (orphan_day, running_day)] == [
        JobStatus.FAILED,
        JobStatus.STARTED,
    ]
    with database.begin() as conn:  # leave no STARTED record behind for the other tests
        conn.execute(delete(batch_job_execution).where(batch_job_execution.c.id.in_(ids)))


def test_two_runs_of_the_same_date_never_overlap(api: Api, database: Engine, generated: dict[str, Any]) -> None:
    day = generated["days"][0]
    with database.connect() as holder:  # as if a run of that date were in progress
        assert holder.scalar(text("SELECT GET_LOCK(:n, 0)"), {"n": lock_name(day)}) == 1
        with api.client(admin=True) as client:
            r = client.post("/api/admin/batch/aggregate", params={"date": day.isoformat()})
        assert (r.status_code, r.json()["errorCode"]) == (409, "BATCH_ALREADY_RUNNING")
        holder.execute(text("SELECT RELEASE_LOCK(:n)"), {"n": lock_name(day)})
    job = _run_via_api(api, day)
    assert job["status"] == "COMPLETED" and job["trigger"] == "MANUAL" and job["campaignsTotal"] == 3


def test_scheduler_catches_up_the_missed_days(generated: dict[str, Any], database: Engine, settings: Settings) -> None:
    days = generated["days"]
    with database.begin() as conn:  # the last successful scheduled run was for the first generated day
        conn.execute(delete(batch_job_execution).where(batch_job_execution.c.target_date >= days[0]))
        conn.execute(
            batch_job_execution.insert().values(
                job_name=JOB_NAME,
                target_date=days[0],
                trigger_type=JobTrigger.SCHEDULED,
                status=JobStatus.COMPLETED,
                started_at=utcnow(),
                ended_at=utcnow(),
            )
        )
    today = days[-1] + dt.timedelta(days=1)  # the scheduler starts the day after the last generated day

    outcomes = catch_up(database, settings, today=today)

    assert list(outcomes) == days[1:]
    assert set(outcomes.values()) == {JobStatus.COMPLETED}
    for day in days[1:]:
        assert len(_stats_rows(database, day)) == 3
        assert _jobs(database, day)[-1].trigger_type is JobTrigger.SCHEDULED
    assert catch_up(database, settings, today=today) == {}  # nothing left to catch up


def test_days_to_catch_up_is_bounded() -> None:
    today = dt.date(2026, 5, 31)
    assert days_to_catch_up(dt.date(2026, 5, 29), today) == [dt.date(2026, 5, 30)]
    assert days_to_catch_up(dt.date(2026, 5, 30), today) == []
    assert len(days_to_catch_up(None, today)) == 30
    assert days_to_catch_up(dt.date(2025, 1, 1), today)[0] == dt.date(2026, 5, 1)


def test_generated_history_is_consistent(generated: dict[str, Any], database: Engine) -> None:
    with database.connect() as conn:
        ids = [r.id for r in conn.execute(select(campaign.c.id).where(campaign.c.name.like("2025-03-%")))]
    assert len(ids) == 12
    assert sum(sum(history_counts(database, cid).values()) for cid in ids) == generated["rows"]
    for cid in ids:
        counts = assert_counters_match_history(database, cid)
        assert counts["DUPLICATE"] > 0 and counts["FAIL"] > 0
        with database.connect() as conn:
            seconds = conn.execute(select(campaign_second).where(campaign_second.c.campaign_id == cid)).all()
        assert sum(r.success_count for r in seconds) == counts["SUCCESS"]
        assert sum(r.fail_count + r.duplicate_count for r in seconds) == counts["FAIL"] + counts["DUPLICATE"]
        assert min(r.stock_after for r in seconds) == campaign_row(database, cid).current_stock


def test_old_job_records_are_pruned(database: Engine) -> None:
    now = utcnow()
    with database.begin() as conn:
        for age in (91, 89):
            conn.execute(
                batch_job_execution.insert().values(
                    job_name="prune-probe",
                    target_date=dt.date(2024, 1, 1),
                    trigger_type=JobTrigger.SCHEDULED,
                    status=JobStatus.COMPLETED,
                    started_at=now - dt.timedelta(days=age),
                )
            )
    assert prune_job_history(database, now=now) == 1
    with database.connect() as conn:
        left = conn.execute(
            select(batch_job_execution.c.started_at).where(batch_job_execution.c.job_name == "prune-probe")
        ).all()
    assert [r.started_at for r in left] == [now - dt.timedelta(days=89)]


def test_period_statistics_give_per_day_rows(
    api: Api, generated: dict[str, Any], database: Engine, settings: Settings
) -> None:
    days = generated["days"]
    for day in days:
        aggregate_day(database, day, JobTrigger.MANUAL, settings.tz)
    params = {"from": days[0].isoformat(), "to": days[-1].isoformat()}
    with api.client(admin=True) as client:
        batched = client.get("/api/admin/stats/daily", params=params).json()["data"]
        raw = client.get("/api/admin/stats/raw", params=params).json()["data"]
        one = batched["rows"][0]["campaignId"]
        only = client.get("/api/admin/stats/daily", params={**params, "campaignId": one}).json()["data"]
    assert batched["summary"] == raw["summary"]
    assert batched["summary"]["totalCount"] == generated["rows"]
    assert len(batched["rows"]) == 12
    assert {r["date"] for r in batched["rows"]} == {d.isoformat() for d in days}
    strip = [{k: v for k, v in r.items() if k in raw["rows"][0]} for r in batched["rows"]]
    assert strip == raw["rows"]
    assert [r["campaignId"] for r in only["rows"]] == [one] and only["campaignId"] == one


@pytest.mark.parametrize(
    "path, params, code",
    [
        ("/api/admin/stats/daily", {"date": "2025-13-01"}, "INVALID_DATE"),
        ("/api/admin/stats/daily", {"date": "yesterday"}, "INVALID_DATE"),
        ("/api/admin/stats/raw", {"date": "2025-1-1"}, "INVALID_DATE"),
        ("/api/admin/stats/raw", {}, "MISSING_DATE"),
        ("/api/admin/stats/daily", {"from": "2025-03-10"}, "MISSING_DATE"),
        ("/api/admin/stats/daily", {"from": "2025-03-10", "to": "2025-03-01"}, "INVALID_DATE_RANGE"),
        (
            "/api/admin/stats/raw",
            {"date": "2025-03-01", "from": "2025-03-01", "to": "2025-03-02"},
            "INVALID_DATE_RANGE",
        ),
        ("/api/admin/stats/daily", {"from": "2020-01-01", "to": "2025-01-01"}, "DATE_RANGE_TOO_LONG"),
        ("/api/admin/stats/daily", {"date": "2999-01-01"}, "DATE_IN_FUTURE"),
        ("/api/admin/stats/raw", {"from": "2025-01-01", "to": "2999-01-01"}, "DATE_IN_FUTURE"),
        ("/api/admin/stats/raw", {"date": "0001-01-01"}, "DATE_OUT_OF_RANGE"),
        ("/api/admin/stats/daily", {"date": "1970-01-01"}, "DATE_OUT_OF_RANGE"),
        ("/api/admin/stats/daily", {"from": "0001-01-01", "to": "0001-01-02"}, "DATE_OUT_OF_RANGE"),
    ],
)
def test_statistics_dates_are_validated(api: Api, path: str, params: dict[str, str], code: str) -> None:
    with api.client(admin=True) as client:
        r = client.get(path, params=params)
    assert (r.status_code, r.json()["errorCode"]) == (400, code), r.text


def test_batch_endpoints_validate_and_need_the_token(api: Api) -> None:
    with api.client(admin=True) as client:
        for date, code in (
            ("2025-02-30", "INVALID_DATE"),
            ("2999-01-01", "DATE_IN_FUTURE"),
            ("0001-01-01", "DATE_OUT_OF_RANGE"),
        ):
            r = client.post("/api/admin/batch/aggregate", params={"date": date})
            assert (r.status_code, r.json()["errorCode"]) == (400, code)
        r = client.get("/api/admin/batch/status/987654321")
        assert (r.status_code, r.json()["errorCode"]) == (404, "JOB_NOT_FOUND")
        assert client.get("/api/admin/batch/history").status_code == 200
    with api.client() as anonymous:
        for method, path in (
            ("POST", "/api/admin/batch/aggregate?date=2025-01-01"),
            ("GET", "/api/admin/batch/history"),
            ("GET", "/api/admin/batch/status/1"),
            ("GET", "/api/admin/stats/daily?date=2025-01-01"),
            ("GET", "/api/admin/stats/raw?date=2025-01-01"),
        ):
            r = anonymous.request(method, path)
            assert (r.status_code, r.json()["errorCode"]) == (401, "UNAUTHORIZED"), path


def test_scheduler_process_starts_catches_up_and_stops_on_sigterm(settings: Settings, processes: Processes) -> None:
    import sys

    proc = processes.start("scheduler", [sys.executable, "-m", "batch.scheduler"], settings_env(settings))
    wait_until(lambda: "scheduler up" in proc.log() or proc.popen.poll() is not None, 120, "the scheduler to start")
    assert "aggregation daily at 02:00" in proc.log(), proc.log()
    assert proc.terminate(30) == 0
    assert "scheduler stopped" in proc.log()


def test_demo_history_is_labelled_generated_and_its_days_aggregated(
    settings: Settings, processes: Processes, database: Engine
) -> None:
    """A fresh install's Analytics page in a minute: labelled campaigns of the past days, aggregated."""
    api = processes.api(settings, DEMO_MAX_DAYS="2", DEMO_MAX_ROWS="2000")
    yesterday = _a_day_that_lasts(settings.tz, minutes=2) - dt.timedelta(days=1)  # the same day for the API
    days = [(yesterday - dt.timedelta(days=1)).isoformat(), yesterday.isoformat()]
    with api.client(admin=True) as client:
        r = client.post("/api/admin/demo/history", json={"days": 2, "campaignsPerDay": 2, "rows": 2000})
        assert r.status_code == 201, r.text
        made = r.json()["data"]
        assert made["campaigns"] == len(made["campaignIds"]) == 4 and made["label"] == "[generated]"
        assert made["rows"] == 2000  # the cap, as asked: never more
        assert [(j["date"], j["status"]) for j in made["jobs"]] == [(day, "COMPLETED") for day in days]
        ours = set(made["campaignIds"])
        total = 0
        for day in days:
            daily = client.get("/api/admin/stats/daily", params={"date": day}).json()["data"]
            generated = [c for c in daily["campaigns"] if c["campaignId"] in ours]
            assert len(generated) == 2, daily["campaigns"]
            assert all(c["campaignName"].startswith(f"[generated] {day} ") for c in generated)
            raw = client.get("/api/admin/stats/raw", params={"date": day}).json()["data"]
            assert daily["summary"] == raw["summary"]  # aggregated from what was written
            total += sum(c["totalCount"] for c in generated)
        assert total == made["rows"]
        with database.connect() as conn:  # the rows written, counted in the table itself
            written = conn.scalar(
                select(func.count()).where(participation_history.c.campaign_id.in_(made["campaignIds"]))
            )
        assert written == 2000
        wrongs = (
            {"days": 31},
            {"days": 0},
            {"campaignsPerDay": 11},
            {"rows": 2001},
            {"days": 2, "campaignsPerDay": 2, "rows": 3},
            {"rows": 1_000_001},
            {"rows": "5"},
        )
        for wrong in wrongs:
            refused = client.post("/api/admin/demo/history", json=wrong)
            assert (refused.status_code, refused.json()["errorCode"]) == (422, "VALIDATION_ERROR"), wrong
