"""Taking part through Kafka, the system's hot path: check, sign, publish, answer once Kafka has it.

`Intake.accept` is the whole decision of the door for one request; the participation door
(`backend/door/handler.py`) calls it for every request, and the declared FastAPI route calls the same.
Everything it needs is in memory: the campaign's window from the cache, the rate limiter's buckets,
the request-id key, the shared producer.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

from backend.app.errors import (
    ApiError,
    campaign_ended,
    campaign_not_found,
    campaign_not_started,
    campaign_paused,
    invalid,
    kafka_unavailable,
    unauthenticated,
    user_mismatch,
    wrong_channel,
)
from backend.app.observability import BATCHED, PARTICIPATIONS, PRODUCE_SECONDS
from backend.door.campaign_cache import CampaignCache, CampaignWindow
from backend.door.intake_seconds import ACCEPTED as ACCEPTED_SECOND
from backend.door.intake_seconds import LIMITED, UNAVAILABLE, IntakeSeconds
from backend.door.producer import AsyncProducer, KafkaUnavailable
from backend.door.rate_limit import Limits
from fcfs.campaigns import CampaignStatus
from fcfs.events import ParticipationEvent, signed_event
from fcfs.request_ids import RequestIdSigner
from fcfs.schema import Channel
from fcfs.settings import Settings
from fcfs.simulated import FIRST_SIMULATED_USER, RESERVED, SimulationProofs
from fcfs.tokens import Unauthenticated, UserTokens

log = logging.getLogger(__name__)

ACCEPTED = PARTICIPATIONS.labels("202")
REFUSED = PARTICIPATIONS.labels("503")


def closed(campaign_id: int, refusal: CampaignStatus) -> ApiError:
    """The answer to a request outside the campaign's window (sold out is not refused: it is a FAIL)."""
    if refusal is CampaignStatus.SCHEDULED:
        return campaign_not_started(campaign_id)
    return campaign_ended(campaign_id)


def ensure_open(window: CampaignWindow | None, campaign_id: int) -> CampaignWindow:
    """The campaign's window if it takes part through Kafka now; 404 for an unknown campaign, 409 for a
    campaign of the synchronous door, outside its window, or paused by its operators."""
    if window is None:
        raise campaign_not_found(campaign_id)
    if window.mode is not Channel.KAFKA:
        raise wrong_channel(campaign_id, window.mode.value)
    refusal = window.refusal(time.time())
    if refusal is not None:
        raise closed(campaign_id, refusal)
    if window.paused:
        raise campaign_paused(campaign_id)
    return window


async def ensure_taking_part(campaigns: CampaignCache, campaign_id: int) -> CampaignWindow:
    """`ensure_open` with the window from the cache (a database read only the first time); the window."""
    return ensure_open(campaigns.cached(campaign_id) or await campaigns.get(campaign_id), campaign_id)


def reply(event: ParticipationEvent, status: str) -> dict[str, Any]:
    return {"requestId": event.request_id, "campaignId": event.campaign_id, "userId": event.user_id, "status": status}


def not_queued(data: dict[str, Any], exc: KafkaUnavailable, waited_s: float | None = None) -> ApiError:
    """503: the request is not known to be accepted (I5). `NOT_ACCEPTED`: Kafka certainly does not have it;
    `UNKNOWN`: Kafka may have it without having acknowledged it in time, so it may still be decided.
    Either way a retry with the same Idempotency-Key is the same request, decided at most once. `waitedMs`: how
    long the door waited for Kafka (I5's bound is the produce timeout + 1 s)."""
    if exc.maybe_written:
        status, advice = "UNKNOWN", "it may still be decided: retry with the same Idempotency-Key, or look it up"
    else:
        status, advice = "NOT_ACCEPTED", "retry"
    waited = {} if waited_s is None else {"waitedMs": round(waited_s * 1000)}
    return kafka_unavailable(
        f"the request could not be queued ({exc}); {advice}", data={**data, "status": status, **waited}
    )


def identify(
    tokens: UserTokens | None,
    authorization: bytes | str | None,
    user_id: int | None,
    proofs: SimulationProofs,
    simulated: bytes | str | None = None,
) -> int:
    """Who takes part: the body's userId (USER_AUTH=none), or the token's user (USER_AUTH=jwt), with a
    body userId, if any, that must be the same (403 USER_MISMATCH); 401 UNAUTHENTICATED without a valid
    token, saying no more (the log does, at debug level). A user of the simulated range only with the
    simulator's proof (`simulated`, the X-Simulated-User header): 422 otherwise."""
    user = _identified(tokens, authorization, user_id)
    if user >= FIRST_SIMULATED_USER and not proofs.verify(user, simulated):
        raise invalid("userId", RESERVED)
    return user


def _identified(tokens: UserTokens | None, authorization: bytes | str | None, user_id: int | None) -> int:
    if tokens is None:
        if user_id is None:
            raise invalid("userId", "Field required")
        return user_id
    try:
        user = tokens.user(authorization)
    except Unauthenticated as exc:
        log.debug("participation refused: %s", exc)
        raise unauthenticated() from None
    if user_id is not None and user_id != user:
        raise user_mismatch()
    return user


@dataclass
class Intake:
    """The participation path's state: one per API process, built at start-up."""

    settings: Settings
    producer: AsyncProducer
    signer: RequestIdSigner
    campaigns: CampaignCache
    limits: Limits
    proofs: SimulationProofs  # the simulator's users' X-Simulated-User header
    tokens: UserTokens | None = None  # USER_AUTH=jwt
    seconds: IntakeSeconds | None = None  # the answers counted per campaign and second, for the Live page

    @property
    def topic(self) -> str:
        return self.settings.kafka_topic

    async def accept(
        self, campaign_id: int, user_id: int, client: str, publish: bool = True, idempotency_key: str | None = None
    ) -> dict[str, Any]:
        """Admit one request: the reply's data once Kafka has it; ApiError (429, 404, 409, 503) otherwise.

        With an idempotency key the request id is the key's (the same for every retry), so a request
        published twice is decided once. `publish=False` does everything but the publishing (the
        benchmarks' no-I/O baseline). This is the hottest code of the system: every step is in memory,
        nothing is built twice.
        """
        try:
            self.limits.check(client, user_id)
        except ApiError:
            if self.seconds is not None and self.campaigns.cached(campaign_id) is not None:  # known ones only
                self.seconds.count(campaign_id, LIMITED)
            raise
        window = ensure_open(self.campaigns.cached(campaign_id) or await self.campaigns.get(campaign_id), campaign_id)
        event = signed_event(self.signer, campaign_id, user_id, idempotency_key)
        value = event.to_json()
        data = reply(event, "PENDING")
        if window.pre_queue_s and window.pre_queued(event.requested_at_ms, 0.0):
            data["preQueued"] = True  # held for the draw at the opening
        if not publish:
            return data
        started = time.perf_counter()
        try:
            data["partition"], data["offset"] = await self.producer.send(
                self.topic, event.key(), value, window.partition
            )
        except KafkaUnavailable as exc:
            BATCHED.inc(REFUSED)
            if self.seconds is not None:
                self.seconds.count(campaign_id, UNAVAILABLE)
            waited, bound = time.perf_counter() - started, self.settings.kafka_produce_timeout_ms / 1000 + 1
            if waited > bound + 0.5:  # I5 promises the answer within the bound: say so when it was not kept
                log.warning("a participation waited %.1f s for Kafka, past I5's %.1f s bound", waited, bound)
            raise not_queued(data, exc, waited) from None
        BATCHED.observe(PRODUCE_SECONDS, time.perf_counter() - started)
        BATCHED.inc(ACCEPTED)
        if self.seconds is not None:
            self.seconds.count(campaign_id, ACCEPTED_SECOND)
        return data
