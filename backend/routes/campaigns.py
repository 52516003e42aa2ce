"""Campaigns as the public and the dashboard see them: the list and the live status (O(1))."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path
from sqlalchemy import select
from starlette.responses import Response

from backend.deps import EngineDep, SettingsDep
from backend.errors import campaign_not_found, envelope
from backend.presenters import campaign_json, campaign_status_json
from backend.schemas import CampaignId
from fcfs.schema import campaign

router = APIRouter(prefix="/api/campaigns", tags=["campaigns"])


@router.get("", summary="Every campaign, newest first")
def list_campaigns(engine: EngineDep, settings: SettingsDep) -> Response:
    with engine.connect() as conn:
        rows = conn.execute(select(campaign).order_by(campaign.c.id.desc()).limit(500)).all()
    return envelope([campaign_json(row, settings.tz) for row in rows])


@router.get("/{campaignId}/status", summary="Live counters of one campaign, kept by the worker (O(1))")
def campaign_status(campaign_id: Annotated[CampaignId, Path(alias="campaignId")], engine: EngineDep) -> Response:
    with engine.connect() as conn:
        row = conn.execute(select(campaign).where(campaign.c.id == campaign_id)).first()
    if row is None:
        raise campaign_not_found(campaign_id)
    return envelope(campaign_status_json(row))
