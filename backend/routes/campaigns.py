"""Campaigns as the public and the dashboard see them: the list and the live status (O(1))."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query
from starlette.responses import Response

from backend.app.deps import EngineDep, SettingsDep
from backend.app.errors import campaign_not_found, envelope
from backend.contract.presenters import campaign_json, campaign_status_json
from backend.contract.responses import Campaign, CampaignStatusPublic, Timeline, errors, ok
from backend.contract.schemas import CampaignId
from backend.queries import campaigns
from fcfs.epoch import from_epoch_s

router = APIRouter(prefix="/api/campaigns", tags=["campaigns"])


@router.get("", summary="Every campaign, newest first", responses={**ok(200, list[Campaign]), **errors(503)})
def list_campaigns(engine: EngineDep, settings: SettingsDep) -> Response:
    return envelope([campaign_json(row, settings.tz) for row in campaigns.list_campaigns(engine, limit=500)])


@router.get(
    "/{campaignId}/status",
    summary="Live counters of one campaign, kept by the worker (O(1))",
    operation_id="campaignStatus",
    responses={**ok(200, CampaignStatusPublic), **errors(404, 422, 503)},
)
def campaign_status(campaign_id: Annotated[CampaignId, Path(alias="campaignId")], engine: EngineDep) -> Response:
    row = campaigns.get_campaign(engine, campaign_id=campaign_id)
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
    try:
        return envelope(campaigns.timeline(engine, campaign_id=campaign_id, since=since, limit=limit))
    except LookupError:
        raise campaign_not_found(campaign_id) from None
