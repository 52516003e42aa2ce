"""Operator endpoints for the daily aggregation job: run it for a date, follow it, list past runs."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request
from starlette.responses import Response

from backend.app.deps import AdminDep, EngineDep, SettingsDep
from backend.app.errors import batch_already_running, batch_queue_full, envelope, job_not_found
from backend.contract.dates import AS_DATE, parse_day
from backend.contract.presenters import job_json
from backend.contract.responses import Job, JobStarted, errors, link, ok
from fcfs.aggregation import AggregationAlreadyRunning, get_job, job_history, run_job, start_job
from fcfs.schema import JobTrigger

MAX_MANUAL_RUNS = 8  # runs started from the API and not yet ended, per API process (each holds a connection)

router = APIRouter(prefix="/api/admin/batch", tags=["batch"], dependencies=[AdminDep], responses=errors(401, 422, 503))


@router.post(
    "/aggregate",
    status_code=202,
    summary="Aggregate a date in the background; 409 while one runs",
    responses={
        **ok(202, JobStarted, links={"batchStatus": link("batchStatus", jobExecutionId="data.jobExecutionId")}),
        **errors(
            400,
            _409="BATCH_ALREADY_RUNNING: data.jobExecutionId is the running one",
            _429="BATCH_QUEUE_FULL: as many runs as this process takes are running or waiting",
        ),
    },
)
def aggregate(
    request: Request,
    engine: EngineDep,
    settings: SettingsDep,
    date: Annotated[str, Query(description="YYYY-MM-DD in the configured time zone", json_schema_extra=AS_DATE)],
) -> Response:
    day = parse_day("date", date, settings.tz)
    runs = request.app.state.manual_runs
    if not runs.acquire(blocking=False):
        raise batch_queue_full(MAX_MANUAL_RUNS)
    try:  # the date's lock is held on a connection of its own until the run ends: none of the pool's
        job = start_job(request.app.state.lock_engine, day, JobTrigger.MANUAL)
    except AggregationAlreadyRunning as exc:
        runs.release()
        raise batch_already_running(
            f"an aggregation of {day} is already running", data={"jobExecutionId": exc.job_id, "date": day.isoformat()}
        ) from None
    except BaseException:
        runs.release()
        raise
    request.app.state.batch_executor.submit(run_job, engine, job, settings.tz).add_done_callback(
        lambda _: runs.release()
    )
    return envelope(
        {"jobExecutionId": job.job_id, "status": "STARTED", "date": day.isoformat()}, "aggregation started", 202
    )


@router.get(
    "/status/{jobExecutionId}",
    summary="One run: status, times, per-campaign outcome",
    operation_id="batchStatus",
    responses={**ok(200, Job), **errors(_404="JOB_NOT_FOUND")},
)
def status(
    job_id: Annotated[int, Path(alias="jobExecutionId", ge=1, le=2**63 - 1)], engine: EngineDep, settings: SettingsDep
) -> Response:
    job = get_job(engine, job_id)
    if job is None:
        raise job_not_found(job_id)
    return envelope(job_json(job, settings.tz))


@router.get("/history", summary="Recent runs, newest first", responses=ok(200, list[Job]))
def history(engine: EngineDep, settings: SettingsDep, limit: Annotated[int, Query(ge=1, le=500)] = 50) -> Response:
    return envelope([job_json(row, settings.tz) for row in job_history(engine, limit)])
