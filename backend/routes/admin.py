"""Operator endpoints (admin token): campaigns and the bulk load generator."""

from __future__ import annotations

import random

from fastapi import APIRouter
from starlette.responses import Response

from backend.app.deps import (
    AdminDep,
    CampaignCacheDep,
    EngineDep,
    ProducerDep,
    SettingsDep,
    SignerDep,
)
from backend.app.errors import envelope, invalid, kafka_unavailable
from backend.contract.dates import stored_utc
from backend.contract.presenters import campaign_json
from backend.contract.responses import BulkPublished, Campaign, errors, link, ok
from backend.contract.schemas import BulkParticipationRequest, CampaignCreate
from backend.door.campaign_cache import window_of
from backend.door.intake import ensure_taking_part
from backend.door.producer import KafkaUnavailable
from backend.queries import campaigns as stored
from fcfs.db import utcnow
from fcfs.draw import commitment, new_seed
from fcfs.events import MAX_USER_ID, signed_event
from fcfs.schema import Channel, PreQueueOrder
from fcfs.simulated import simulated_user

RETRY = {"Retry-After": "1"}
router = APIRouter(prefix="/api/admin", tags=["admin"], dependencies=[AdminDep], responses=errors(401, 503))


@router.post(
    "/campaigns",
    status_code=201,
    summary="Create a campaign",
    operation_id="createCampaign",
    responses={
        **ok(
            201,
            Campaign,
            links={
                "participate": link("participate", campaignId="data.id"),
                "participateSync": link("participateSync", campaignId="data.id"),
                "campaignStatus": link("campaignStatus", campaignId="data.id"),
                "campaignTimeline": link("campaignTimeline", campaignId="data.id"),
            },
        ),
        **errors(400, 408, 413, 422),
    },
)
def create_campaign(
    body: CampaignCreate,
    engine: EngineDep,
    settings: SettingsDep,
    campaigns: CampaignCacheDep,
    producer: ProducerDep,
) -> Response:
    """A Kafka campaign is placed on a partition for its whole life: the operator's `partition`, or the
    partition with the least weight of live campaigns (see fcfs/placement.py)."""
    partitions = 0
    if body.mode is Channel.KAFKA:
        try:
            partitions = producer.partitions(settings.kafka_topic)
        except KafkaUnavailable as exc:
            raise kafka_unavailable(f"cannot place the campaign: {exc}") from None
        if body.partition is not None and body.partition >= partitions:
            raise invalid("partition", f"the topic has {partitions} partitions (0 to {partitions - 1})")
    elif body.partition is not None:
        raise invalid("partition", "a SYNC campaign does not go through Kafka")
    values = {
        "name": body.name.strip(),
        "total_stock": body.total_stock,
        "current_stock": body.total_stock,
        "starts_at": stored_utc(body.starts_at, settings.tz),
        "ends_at": stored_utc(body.ends_at, settings.tz),
        "created_at": utcnow(),
        "mode": body.mode,
        "weight": body.weight,
        "paused": body.paused,
        "claim_seconds": body.claim_seconds,
        "pre_queue_seconds": body.pre_queue_seconds,
        "pre_queue_order": body.pre_queue_order,
    }
    if body.pre_queue_seconds and body.pre_queue_order is PreQueueOrder.DRAW:
        seed = new_seed()  # kept secret until the draw; its SHA-256 is published from now on
        values |= {"draw_seed": seed, "draw_commitment": commitment(seed)}
    row = stored.create_campaign(engine, values=values, partitions=partitions, partition=body.partition)
    campaigns.remember(window_of(row))
    return envelope(campaign_json(row, settings.tz), "campaign created", 201)


@router.get("/campaigns", summary="Every campaign, newest first", responses=ok(200, list[Campaign]))
def list_campaigns(engine: EngineDep, settings: SettingsDep) -> Response:
    return envelope([campaign_json(row, settings.tz) for row in stored.list_campaigns(engine)])


@router.post(
    "/test/participate-bulk",
    status_code=202,
    summary="Publish `count` requests from distinct users",
    responses={
        **ok(202, BulkPublished),
        **errors(400, 404, 408, 413, 422, _409="WRONG_CHANNEL, CAMPAIGN_NOT_STARTED, CAMPAIGN_ENDED, CAMPAIGN_PAUSED"),
    },
)
async def participate_bulk(
    body: BulkParticipationRequest,
    settings: SettingsDep,
    producer: ProducerDep,
    signer: SignerDep,
    campaigns: CampaignCacheDep,
) -> Response:
    if body.count > settings.bulk_max_count:
        raise invalid("count", f"must be at most {settings.bulk_max_count}")
    window = await ensure_taking_part(campaigns, body.campaign_id)
    first = simulated_user(body.user_id_start or random.randrange(1, 2**51))  # simulated users only
    if first + body.count - 1 > MAX_USER_ID:
        raise invalid("userIdStart", "the users would run past the largest userId")
    events = (signed_event(signer, body.campaign_id, user) for user in range(first, first + body.count))
    try:
        await producer.send_many(
            settings.kafka_topic, ((e.key(), e.to_json()) for e in events), body.count, window.partition
        )
    except KafkaUnavailable as exc:
        raise kafka_unavailable(f"bulk load not fully queued: {exc}") from None
    data = {"campaignId": body.campaign_id, "requestCount": body.count, "firstUserId": first, "status": "PUBLISHED"}
    return envelope(data, f"{body.count} participation requests published", 202)
