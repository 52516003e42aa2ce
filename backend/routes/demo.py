"""A demo on a fresh install: generated history (clearly labelled) and its aggregation, so the Analytics
page has something to show within a minute."""

from __future__ import annotations

import datetime as dt
import random
from typing import Annotated

from fastapi import APIRouter
from pydantic import Field, StrictInt
from starlette.responses import Response

from backend.app.deps import AdminDep, EngineDep, SettingsDep
from backend.app.errors import batch_already_running, envelope, invalid
from backend.contract.responses import DemoHistory, errors, ok
from backend.contract.schemas import CamelModel
from fcfs.aggregation import AggregationAlreadyRunning, aggregate_day
from fcfs.days import days_between, local_today
from fcfs.history import generate_history
from fcfs.schema import JobTrigger

router = APIRouter(prefix="/api/admin/demo", tags=["demo"], dependencies=[AdminDep], responses=errors(401, 503))
LABEL = "[generated] "


class DemoHistoryRequest(CamelModel):
    days: Annotated[StrictInt, Field(ge=1, le=30, description="days of history, ending yesterday")] = 7
    campaigns_per_day: Annotated[StrictInt, Field(ge=1, le=10)] = 3
    rows: Annotated[StrictInt, Field(ge=1, le=1_000_000, description="this many requests in all")] = 100_000


@router.post(
    "/history",
    status_code=201,
    summary="Generate labelled demo history (at most 30 days x 10 campaigns) and aggregate its days",
    responses={**ok(201, DemoHistory), **errors(400, 408, 409, 413, 422)},
)
def demo_history(body: DemoHistoryRequest, engine: EngineDep, settings: SettingsDep) -> Response:
    """Campaigns named "[generated] …", one-day events with an opening rush and repeat clicks, decided by
    the worker's rule, written into the normal tables; then the nightly aggregation of each day."""
    if body.days > settings.demo_max_days:
        raise invalid("days", f"must be at most {settings.demo_max_days}")
    if body.rows > settings.demo_max_rows:
        raise invalid("rows", f"must be at most {settings.demo_max_rows}")
    if body.rows < body.days * body.campaigns_per_day:
        raise invalid("rows", "must be at least one per campaign (days x campaignsPerDay)")
    last = local_today(settings.tz) - dt.timedelta(days=1)
    result = generate_history(
        engine,
        last_day=last,
        days=body.days,
        campaigns_per_day=body.campaigns_per_day,
        rows=body.rows,
        tz=settings.tz,
        seed=random.randrange(2**32),
        label=LABEL,
    )
    jobs = []
    for day in days_between(last - dt.timedelta(days=body.days - 1), last):
        try:
            job_id, status = aggregate_day(engine, day, JobTrigger.MANUAL, settings.tz)
        except AggregationAlreadyRunning as exc:
            raise batch_already_running(
                f"an aggregation of {day} is running: history written, aggregate later"
            ) from exc
        jobs.append({"date": day.isoformat(), "jobExecutionId": job_id, "status": status.value})
    data = {
        "label": LABEL.strip(),
        "campaigns": result.campaigns,
        "campaignIds": result.campaign_ids,
        "rows": result.rows,
        "seconds": round(result.seconds, 2),
        "jobs": jobs,
    }
    return envelope(
        data, f"{result.campaigns} generated campaigns, {result.rows:,} requests, {len(jobs)} days aggregated", 201
    )
