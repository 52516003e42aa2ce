"""Campaigns as the public and the dashboard see them: the list and the live status (O(1))."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import APIRouter, Path, Query
from sqlalchemy import select
from starlette.responses import Response

from backend.deps import EngineDep, SettingsDep
from backend.errors import campaign_not_found, envelope
from backend.intake_seconds import intake_points
from backend.outages import outage_seconds
from backend.presenters import campaign_json, campaign_status_json
from backend.responses import Campaign, CampaignStatus, Timeline, errors, ok
from backend.schemas import CampaignId
from backend.timeline import campaign_timeline as timeline
from backend.timeline import from_epoch_s
from fcfs.schema import campaign

router = APIRouter(prefix="/api/campaigns", tags=["campaigns"])


@router.get("", summary="Every campaign, newest first", responses={**ok(200, list[Campaign]), **errors(503)})
def list_campaigns(engine: EngineDep, settings: SettingsDep) -> Response:
    with engine.connect() as conn:
        rows = conn.execute(select(campaign).order_by(campaign.c.id.desc()).limit(500)).all()
    return envelope([campaign_json(row, settings.tz) for row in rows])


@router.get(
    "/{campaignId}/status",
    summary="Live counters of one campaign, kept by the worker (O(1))",
    operation_id="campaignStatus",
    responses={**ok(200, CampaignStatus), **errors(404, 422, 503)},
)
def campaign_status(campaign_id: Annotated[CampaignId, Path(alias="campaignId")], engine: EngineDep) -> Response:
    with engine.connect() as conn:
        row = conn.execute(select(campaign).where(campaign.c.id == campaign_id)).first()
    if row is None:
        raise campaign_not_found(campaign_id)
    return envelope(campaign_status_json(row))


@router.get(
    "/{campaignId}/timeline",
    summary="Per-second decisions (newest hour) with running totals and stock, the door's answers per second "
    "and the seconds the API found the database unavailable",
    operation_id="campaignTimeline",
    responses={**ok(200, Timeline), **errors(404, 422, 503)},
)
def campaign_timeline(
    campaign_id: Annotated[CampaignId, Path(alias="campaignId")],
    engine: EngineDep,
    after: Annotated[
        int | None, Query(ge=0, le=4_102_444_800, description="epoch seconds: only points after it")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=3600, description="at most this many newest points (an hour)")] = 3600,
) -> Response:
    since = None if after is None else from_epoch_s(after)
    with engine.connect() as conn:
        try:
            total_stock, points = timeline(conn, campaign_id, since, limit)
        except LookupError:
            raise campaign_not_found(campaign_id) from None
        intake = intake_points(conn, campaign_id, since, limit)
        created: dt.datetime = conn.execute(
            select(campaign.c.created_at).where(campaign.c.id == campaign_id)
        ).scalar_one()
        outages = outage_seconds(conn, created if since is None else max(since, created), limit)
    return envelope(
        {
            "campaignId": campaign_id,
            "totalStock": total_stock,
            "points": points,
            "intake": intake,
            "databaseUnavailable": outages,
        }
    )
