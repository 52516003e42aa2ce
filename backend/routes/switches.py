"""Switches during the event (admin token): pause and resume a campaign's doors, end it now, move its end, add
stock (the earliest FAILs first) — each recorded with who made it, when and what, and marked on the Live page's
time axis.

The process that makes a switch applies it to its own campaign windows at once; every other API process reads
the switch log within `CAMPAIGN_REFRESH_S` (backend/door/campaign_cache.py). Requests accepted before that are
in the log and are decided as usual: a switch refuses what comes after it, it never undoes a 202."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Path, Request
from sqlalchemy import Engine
from starlette.responses import Response

from backend.app.deps import AdminDep, CampaignCacheDep, EngineDep, SettingsDep, client_address
from backend.app.errors import campaign_not_found, envelope, invalid
from backend.contract.dates import stored_utc
from backend.contract.presenters import campaign_json, switch_json
from backend.contract.responses import Campaign, ClaimsSummary, StockAddedAnswer, Switch, errors, ok
from backend.contract.schemas import CampaignChange, CampaignId, StockAdded
from backend.door.campaign_cache import CampaignCache, window_of
from backend.queries import campaigns as stored_campaigns
from backend.queries import switches as stored
from backend.queries.claims import claims_summary
from fcfs.db import utcnow
from fcfs.schema import SwitchAction
from fcfs.settings import Settings

router = APIRouter(
    prefix="/api/admin/campaigns/{campaignId}", tags=["admin"], dependencies=[AdminDep], responses=errors(401, 503)
)
CampaignIdPath = Annotated[CampaignId, Path(alias="campaignId")]
OPERATOR = r"^[^\x00-\x1f\x7f]{1,64}$"
DONE = {
    SwitchAction.PAUSE: ("campaign paused: its doors answer 409 CAMPAIGN_PAUSED", "already paused"),
    SwitchAction.RESUME: ("campaign resumed: its doors take part again", "not paused"),
    SwitchAction.END: ("campaign ended", "already ended"),
    SwitchAction.MOVE_END: ("the campaign's end moved", "the end is already there"),
}


async def _operator(
    operator: Annotated[
        str | None,
        Header(
            alias="X-Operator",
            pattern=OPERATOR,
            description="who makes the switch, as the log records it (1 to 64 printable characters)",
        ),
    ] = None,
) -> str:
    return operator.strip() or "admin API" if operator else "admin API"


Operator = Annotated[str, Depends(_operator)]
ANSWERS = {**ok(200, Campaign), **errors(404, 408, 413, 422)}
WITH_BODY = {**ok(200, Campaign), **errors(400, 404, 408, 413, 422)}


@dataclass(frozen=True)
class Caller:
    """What every switch needs: the database, the settings, this process's campaign windows, and who calls."""

    engine: Engine
    settings: Settings
    campaigns: CampaignCache
    actor: str
    address: str


async def _caller(
    engine: EngineDep, settings: SettingsDep, campaigns: CampaignCacheDep, actor: Operator, request: Request
) -> Caller:
    return Caller(engine, settings, campaigns, actor, client_address(request))


CallerDep = Annotated[Caller, Depends(_caller)]


def _switch(action: SwitchAction, campaign_id: int, caller: Caller, ends_at: dt.datetime | None = None) -> Response:
    try:
        done = stored.switch(
            caller.engine,
            campaign_id=campaign_id,
            action=action,
            actor=caller.actor,
            address=caller.address,
            now=utcnow(),
            ends_at=ends_at,
        )
    except stored.SwitchRefused as exc:
        raise invalid("endsAt", str(exc)) from None
    if done is None:
        raise campaign_not_found(campaign_id)
    caller.campaigns.switched(window_of(done.campaign), action)  # this process at once; the others from the log
    changed, unchanged = DONE[action]
    return envelope(campaign_json(done.campaign, caller.settings.tz), changed if done.changed else unchanged)


@router.post("/pause", summary="Pause the campaign's doors (409 CAMPAIGN_PAUSED, nothing enqueued)", responses=ANSWERS)
def pause(campaign_id: CampaignIdPath, caller: CallerDep) -> Response:
    return _switch(SwitchAction.PAUSE, campaign_id, caller)


@router.post("/resume", summary="Resume a paused campaign's doors", responses=ANSWERS)
def resume(campaign_id: CampaignIdPath, caller: CallerDep) -> Response:
    return _switch(SwitchAction.RESUME, campaign_id, caller)


@router.post("/end", summary="End the campaign now (its doors answer 409 CAMPAIGN_ENDED)", responses=ANSWERS)
def end(campaign_id: CampaignIdPath, caller: CallerDep) -> Response:
    return _switch(SwitchAction.END, campaign_id, caller)


@router.patch("", summary="Move the campaign's end (`endsAt`; null: no end)", responses=WITH_BODY)
def move_end(campaign_id: CampaignIdPath, body: CampaignChange, caller: CallerDep) -> Response:
    return _switch(SwitchAction.MOVE_END, campaign_id, caller, stored_utc(body.ends_at, caller.settings.tz))


@router.post(
    "/stock",
    summary="Add stock during the event: the earliest FAILs win the new units first, then new arrivals",
    responses={**ok(200, StockAddedAnswer), **errors(400, 404, 408, 413, 422)},
)
def add_stock(campaign_id: CampaignIdPath, body: StockAdded, caller: CallerDep) -> Response:
    try:
        done = stored.add_stock(
            caller.engine,
            campaign_id=campaign_id,
            add=body.add,
            actor=caller.actor,
            address=caller.address,
            now=utcnow(),
        )
    except stored.SwitchRefused as exc:
        raise invalid("add", str(exc)) from None
    if done is None:
        raise campaign_not_found(campaign_id)
    row, promoted = done
    caller.campaigns.switched(window_of(row), SwitchAction.ADD_STOCK)  # the look-ups learn the promotions
    data = {"campaign": campaign_json(row, caller.settings.tz), "promoted": promoted}
    return envelope(data, f"{body.add:,} units added; {promoted:,} went to the earliest FAILs")


@router.get(
    "/switches",
    summary="The campaign's switches, oldest first: who, when, what",
    responses={**ok(200, list[Switch]), **errors(404, 422)},
)
def list_switches(campaign_id: CampaignIdPath, engine: EngineDep, settings: SettingsDep) -> Response:
    rows = stored.switches(engine, campaign_id=campaign_id)
    if not rows and not stored_campaigns.campaign_exists(engine, campaign_id=campaign_id):
        raise campaign_not_found(campaign_id)
    return envelope([switch_json(row, settings.tz) for row in rows])


@router.get(
    "/claims",
    summary="The campaign's claims: wins claimed, waiting for their claim, released, promoted, and per second",
    responses={**ok(200, ClaimsSummary), **errors(404, 422)},
)
def campaign_claims(campaign_id: CampaignIdPath, engine: EngineDep) -> Response:
    if not stored_campaigns.campaign_exists(engine, campaign_id=campaign_id):
        raise campaign_not_found(campaign_id)
    return envelope(claims_summary(engine, campaign_id=campaign_id))
