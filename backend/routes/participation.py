"""Taking part: through Kafka (202), synchronously (the comparison baseline), and asking for the outcome."""

from __future__ import annotations

import time
from typing import Annotated, Any

from fastapi import APIRouter, Path
from sqlalchemy import select
from starlette.responses import Response

from backend.campaign_cache import CampaignCache
from backend.deps import (
    CampaignCacheDep,
    EngineDep,
    ProducerDep,
    SettingsDep,
    SignerDep,
)
from backend.errors import ApiError, campaign_not_found, envelope
from backend.observability import PARTICIPATIONS, PRODUCE_SECONDS
from backend.producer import KafkaUnavailable
from backend.rate_limit import RateLimitDep
from backend.schemas import (
    AcceptedParticipation,
    ApiResponse,
    CampaignId,
    ParticipationRequest,
    ParticipationState,
    SyncParticipation,
)
from fcfs.campaigns import CampaignStatus, window_refusal
from fcfs.db import utcnow
from fcfs.events import ParticipationEvent
from fcfs.ledger import CampaignClosed, UnknownCampaign, decide_now
from fcfs.request_ids import IssuedRequest, RequestIdSigner
from fcfs.schema import participation_history

router = APIRouter(prefix="/api/campaigns/{campaignId}", tags=["participation"])
bench_router = APIRouter(prefix="/api/campaigns/{campaignId}", tags=["benchmark"])
CampaignIdPath = Annotated[CampaignId, Path(alias="campaignId")]


def closed(campaign_id: int, refusal: CampaignStatus) -> ApiError:
    """The answer to a request outside the campaign's window (sold out is not refused: it is a FAIL)."""
    if refusal is CampaignStatus.SCHEDULED:
        return ApiError(409, "CAMPAIGN_NOT_STARTED", f"campaign {campaign_id} has not started yet")
    return ApiError(409, "CAMPAIGN_ENDED", f"campaign {campaign_id} has ended")


async def ensure_taking_part(campaigns: CampaignCache, campaign_id: int) -> None:
    """404 for an unknown campaign, 409 outside its window — from the cache, no database read per request."""
    window = await campaigns.get(campaign_id)
    if window is None:
        raise campaign_not_found(campaign_id)
    refusal = window_refusal(window.starts_at, window.ends_at, utcnow())
    if refusal is not None:
        raise closed(campaign_id, refusal)


def new_request(signer: RequestIdSigner, campaign_id: int, user_id: int) -> ParticipationEvent:
    """A participation request with a fresh signed id, as both paths record it."""
    issued = signer.issue(campaign_id, user_id)
    return ParticipationEvent(issued.request_id, campaign_id, user_id, issued.issued_at_ms)


def reply(event: ParticipationEvent, status: str) -> dict[str, Any]:
    return {"requestId": event.request_id, "campaignId": event.campaign_id, "userId": event.user_id, "status": status}


@router.post(
    "/participation",
    status_code=202,
    summary="Take part (Kafka path): 202 once Kafka has the request",
    responses={202: {"model": ApiResponse[AcceptedParticipation]}, 503: {"description": "Kafka unavailable; retry"}},
)
async def participate(
    campaign_id: CampaignIdPath,
    body: ParticipationRequest,
    settings: SettingsDep,
    producer: ProducerDep,
    signer: SignerDep,
    campaigns: CampaignCacheDep,
    _limit: RateLimitDep,
) -> Response:
    event, data = await _accept(campaign_id, body, signer, campaigns)
    started = time.perf_counter()
    try:
        await producer.send(settings.kafka_topic, event.key(), event.to_json())
    except KafkaUnavailable as exc:
        PARTICIPATIONS.labels("503").inc()
        raise ApiError(
            503,
            "KAFKA_UNAVAILABLE",
            f"the request could not be queued, retry: {exc}",
            data={**data, "status": "NOT_ACCEPTED"},
            headers={"Retry-After": "1"},
        ) from None
    PRODUCE_SECONDS.observe(time.perf_counter() - started)
    PARTICIPATIONS.labels("202").inc()
    return envelope(data, "participation request accepted", 202)


async def _accept(
    campaign_id: int, body: ParticipationRequest, signer: RequestIdSigner, campaigns: CampaignCache
) -> tuple[ParticipationEvent, dict[str, Any]]:
    """Everything the Kafka path does before publishing: the event to publish and the reply's data."""
    await ensure_taking_part(campaigns, campaign_id)
    event = new_request(signer, campaign_id, body.user_id)
    return event, reply(event, "PENDING")


@bench_router.post(
    "/participation-noop",
    status_code=202,
    summary="Benchmark baseline (BENCH_ENDPOINTS=true): the Kafka path without Kafka; nothing is recorded",
    responses={202: {"model": ApiResponse[AcceptedParticipation]}},
)
async def participate_noop(
    campaign_id: CampaignIdPath,
    body: ParticipationRequest,
    signer: SignerDep,
    campaigns: CampaignCacheDep,
    _limit: RateLimitDep,
) -> Response:
    event, data = await _accept(campaign_id, body, signer, campaigns)
    event.to_json()  # serialised like a published event, then dropped
    return envelope(data, "participation request accepted (not queued: benchmark baseline)", 202)


@router.post(
    "/participation-sync",
    summary="Take part (synchronous): decided in one database transaction",
    responses={200: {"model": ApiResponse[SyncParticipation]}},
)
def participate_sync(
    campaign_id: CampaignIdPath, body: ParticipationRequest, engine: EngineDep, signer: SignerDep, _limit: RateLimitDep
) -> Response:
    event = new_request(signer, campaign_id, body.user_id)
    try:
        outcome = decide_now(engine, event)
    except UnknownCampaign:
        raise campaign_not_found(campaign_id) from None
    except CampaignClosed as exc:
        raise closed(campaign_id, exc.status) from None
    return envelope({**reply(event, outcome.value), "method": "SYNC"}, "participation decided")


@router.get(
    "/participation/{requestId}",
    summary="The outcome of a request: PENDING until the worker has decided it",
    responses={200: {"model": ApiResponse[ParticipationState]}, 404: {"description": "an id this system never issued"}},
)
def participation_state(
    campaign_id: CampaignIdPath,
    request_id: Annotated[str, Path(alias="requestId", max_length=64)],
    engine: EngineDep,
    signer: SignerDep,
) -> Response:
    issued = _verified(signer, campaign_id, request_id)
    with engine.connect() as conn:
        row = conn.execute(
            select(participation_history.c.status, participation_history.c.user_id).where(
                participation_history.c.request_id == request_id
            )
        ).first()
    data: dict[str, Any] = {
        "requestId": request_id,
        "campaignId": campaign_id,
        "userId": issued.user_id,
        "status": "PENDING" if row is None else row.status.value,
    }
    if row is None:
        data["waitingMs"] = max(int(time.time() * 1000) - issued.issued_at_ms, 0)
    return envelope(data)


def _verified(signer: RequestIdSigner, campaign_id: int, request_id: str) -> IssuedRequest:
    issued = signer.verify(campaign_id, request_id)
    if issued is None:
        raise ApiError(404, "REQUEST_NOT_FOUND", "no such participation request for this campaign")
    return issued
