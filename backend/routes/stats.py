"""Statistics for analysts: from the nightly aggregates (fast) or straight from the history (raw)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Query
from sqlalchemy import Connection, Engine
from starlette.responses import Response

from backend.app.deps import AdminDep, EngineDep, SettingsDep
from backend.app.errors import envelope
from backend.contract.dates import AS_DATE, Period, parse_period
from backend.contract.responses import Statistics, errors, ok
from backend.queries.stats import batched_period, campaign_rows, measured, merge_days, raw_period, summary

router = APIRouter(
    prefix="/api/admin/stats",
    tags=["statistics"],
    dependencies=[AdminDep],
    responses={**ok(200, Statistics), **errors(400, 401, 422, 503)},
)

DateQ = Annotated[str | None, Query(description="one day, YYYY-MM-DD", json_schema_extra=AS_DATE)]
FromQ = Annotated[str | None, Query(alias="from", description="first day of a period", json_schema_extra=AS_DATE)]
ToQ = Annotated[str | None, Query(description="last day of a period (included)", json_schema_extra=AS_DATE)]
CampaignQ = Annotated[int | None, Query(alias="campaignId", ge=1, le=2**63 - 1)]


@dataclass(frozen=True)
class StatsQuery:
    """What a statistics request asks for: a day or a period (in the configured time zone), maybe one campaign."""

    period: Period
    is_period: bool
    campaign_id: int | None
    tz: ZoneInfo

    def batched(self, conn: Connection) -> dict[Any, dict[int, dict[str, Any]]]:
        return batched_period(conn, self.period.first, self.period.last, self.campaign_id)

    def raw(self, conn: Connection) -> dict[Any, dict[int, dict[str, Any]]]:
        return raw_period(conn, self.period.first, self.period.last, self.tz, self.campaign_id)


async def stats_query(
    settings: SettingsDep, date: DateQ = None, from_: FromQ = None, to: ToQ = None, campaign_id: CampaignQ = None
) -> StatsQuery:
    period, is_period = parse_period(date, from_, to, settings.tz)
    return StatsQuery(period, is_period, campaign_id, settings.tz)


StatsQueryDep = Annotated[StatsQuery, Depends(stats_query)]


@router.get("/daily", summary="Statistics from the daily aggregates (method BATCH_AGGREGATED)")
def daily(engine: EngineDep, q: StatsQueryDep) -> Response:
    return envelope(_measured("BATCH_AGGREGATED", engine, q, q.batched))


@router.get("/raw", summary="Statistics computed from the history rows (method RAW_QUERY)")
def raw(engine: EngineDep, q: StatsQueryDep) -> Response:
    return envelope(_measured("RAW_QUERY", engine, q, q.raw))


def _measured(
    method: str, engine: Engine, q: StatsQuery, query: Callable[[Connection], dict[Any, dict[int, dict[str, Any]]]]
) -> dict[str, Any]:
    """Run a statistics query, timing the query alone, and build the answer around its rows."""
    per_day, elapsed, names = measured(engine, query=query)
    return _answer(method, q.period, q.is_period, q.campaign_id, elapsed, per_day, names)


def _answer(
    method: str,
    period: Period,
    is_period: bool,
    campaign_id: int | None,
    elapsed_s: float,
    per_day: dict[Any, dict[int, dict[str, Any]]],
    names: dict[int, str],
) -> dict[str, Any]:
    totals = merge_days(per_day)
    data: dict[str, Any] = {"method": method, "queryTimeMs": round(elapsed_s * 1000, 3)}
    if is_period:
        data.update({"from": period.first.isoformat(), "to": period.last.isoformat(), "campaignId": campaign_id})
    else:
        data["date"] = period.first.isoformat()
    data["summary"] = summary(totals)
    data["campaigns"] = campaign_rows(per_day.get(period.first, {}) if not is_period else totals, names)
    if not is_period:
        extras = per_day.get(period.first, {})
        for row in data["campaigns"]:  # the aggregates also know unique users and time to sell out
            for key in ("uniqueUsers", "sellOutSeconds"):
                if key in extras.get(row["campaignId"], {}):
                    row[key] = extras[row["campaignId"]][key]
    else:
        data["rows"] = [
            {"date": day.isoformat(), **row} for day in sorted(per_day) for row in campaign_rows(per_day[day], names)
        ]
    return data
