"""Operator endpoints for after the event: the winners list (paged JSON, streamed CSV) and the support look-up."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query
from sqlalchemy import Engine
from starlette.responses import Response, StreamingResponse

from backend.app.deps import AdminDep, EngineDep, SettingsDep, SignerDep
from backend.app.errors import bad_cursor, campaign_not_found, envelope, invalid, request_not_found
from backend.contract.presenters import iso, pre_queue_json, user_request_json, winner_json
from backend.contract.responses import DrawState, ParticipantLookup, Winners, errors, ok
from backend.contract.schemas import CampaignId
from backend.queries.campaigns import get_campaign
from backend.queries.draw import filling, pre_queue_csv
from backend.queries.winners import Cursor, user_requests, winners_csv, winners_page
from fcfs.events import MAX_USER_ID
from fcfs.simulated import is_simulated

router = APIRouter(
    prefix="/api/admin/campaigns/{campaignId}",
    tags=["support"],
    dependencies=[AdminDep],
    responses=errors(401, 503),
)
CampaignIdPath = Annotated[CampaignId, Path(alias="campaignId")]


def _campaign_row(engine: Engine, campaign_id: int) -> Any:
    row = get_campaign(engine, campaign_id=campaign_id)
    if row is None:
        raise campaign_not_found(campaign_id)
    return row


@router.get(
    "/winners",
    summary="The winners in decision order, a page at a time (follow nextCursor)",
    responses={**ok(200, Winners), **errors(404, 422, _400="BAD_CURSOR: not a cursor this API returned")},
)
def winners(
    campaign_id: CampaignIdPath,
    engine: EngineDep,
    settings: SettingsDep,
    cursor: Annotated[str | None, Query(max_length=100, description="nextCursor of the previous page")] = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
) -> Response:
    row = _campaign_row(engine, campaign_id)
    try:
        after = None if cursor is None else Cursor.decode(cursor)
    except ValueError as exc:
        raise bad_cursor(str(exc)) from None
    rows, first, following = winners_page(engine, campaign_id=campaign_id, after=after, limit=limit)
    return envelope(
        {
            "campaignId": campaign_id,
            "totalWinners": row.success_count,
            "winners": [winner_json(r, position, settings.tz) for position, r in enumerate(rows, start=first)],
            "nextCursor": following.encode() if following else None,
        }
    )


@router.get(
    "/winners.csv",
    summary="Every winner as CSV, streamed in decision order: position, userId, requestId, decidedAt, place in the log",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/csv": {}}}, **errors(404, 422)},
)
def winners_download(campaign_id: CampaignIdPath, engine: EngineDep, settings: SettingsDep) -> Response:
    _campaign_row(engine, campaign_id)
    return StreamingResponse(
        winners_csv(engine, campaign_id, settings.tz),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="campaign-{campaign_id}-winners.csv"'},
    )


@router.get(
    "/draw",
    summary="The fair opening: the pre-queue, the draw's commitment and, once drawn, its seed; held per second",
    responses={**ok(200, DrawState), **errors(404, 422)},
)
def draw_state(campaign_id: CampaignIdPath, engine: EngineDep, settings: SettingsDep) -> Response:
    row = _campaign_row(engine, campaign_id)
    return envelope(
        {
            "campaignId": campaign_id,
            "startsAt": iso(row.starts_at, settings.tz),
            **pre_queue_json(row, settings.tz),
            "perSecond": filling(engine, campaign_id) if row.pre_queue_seconds else [],
            "verify": "python -m fcfs.draw verify --draw DRAW.json --pre-queue PRE_QUEUE.csv [--winners WINNERS.csv]",
        }
    )


@router.get(
    "/pre-queue.csv",
    summary="The pre-queue in log order, each request with its outcome (PENDING before the draw), streamed as CSV",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/csv": {}}}, **errors(404, 422)},
)
def pre_queue_download(campaign_id: CampaignIdPath, engine: EngineDep) -> Response:
    _campaign_row(engine, campaign_id)
    return StreamingResponse(
        pre_queue_csv(engine, campaign_id),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="campaign-{campaign_id}-pre-queue.csv"'},
    )


@router.get(
    "/participants",
    summary="Support look-up: every request of a user (by userId, or by one of their requestIds) with its outcome, "
    "its place in the log and the winners decided before it",
    responses={
        **ok(200, ParticipantLookup),
        **errors(422, _404="CAMPAIGN_NOT_FOUND, or REQUEST_NOT_FOUND: a requestId this system never issued"),
    },
)
def participant(
    campaign_id: CampaignIdPath,
    engine: EngineDep,
    settings: SettingsDep,
    signer: SignerDep,
    user_id: Annotated[int | None, Query(alias="userId", ge=1, le=MAX_USER_ID)] = None,
    request_id: Annotated[str | None, Query(alias="requestId", max_length=64)] = None,
) -> Response:
    if (user_id is None) == (request_id is None):
        raise invalid("query", "give either userId or requestId")
    row = _campaign_row(engine, campaign_id)
    pending: list[str] = []
    if request_id is not None:
        issued = signer.verify(campaign_id, request_id)
        if issued is None:
            raise request_not_found()
        user_id = issued.user_id
    assert user_id is not None
    requests = [
        user_request_json(row, before, settings.tz)
        for row, before in user_requests(engine, campaign_id=campaign_id, user_id=user_id)
    ]
    if request_id is not None and all(r["requestId"] != request_id for r in requests):
        pending.append(request_id)  # issued, accepted or not, and not decided (yet)
    return envelope(
        {
            "campaignId": campaign_id,
            "userId": user_id,
            "simulated": is_simulated(user_id),
            "totalStock": row.total_stock,
            "winners": row.success_count,
            "soldOutAt": iso(row.sold_out_at, settings.tz),
            "requests": requests,
            "undecided": pending,
        }
    )
