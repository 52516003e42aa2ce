"""Taking part: through Kafka (202), synchronously (the comparison baseline), and asking for the outcome."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Header, Path, Query, Request
from starlette.responses import Response

from backend.app.deps import EngineDep, IntakeDep, SignerDep, client_address
from backend.app.errors import (
    campaign_not_found,
    campaign_paused,
    claim_refused,
    envelope,
    invalid,
    not_your_request,
    request_not_found,
    wrong_channel,
)
from backend.contract.responses import (
    AcceptedParticipation,
    Claim,
    ParticipationState,
    SyncParticipation,
    errors,
    link,
    ok,
)
from backend.contract.schemas import CampaignId, ParticipationRequest
from backend.door.handler import IDEMPOTENCY_KEY, IDEMPOTENCY_KEY_PROBLEM
from backend.door.intake import closed, identify, reply
from backend.door.lookup import MAX_WAIT_S, Lookups
from fcfs.claims import ClaimRefused, ClaimView, claim
from fcfs.db import utcnow
from fcfs.events import signed_event
from fcfs.ledger import CampaignClosed, CampaignPaused, UnknownCampaign, WrongChannel, decide_now
from fcfs.simulated import HEADER

router = APIRouter(prefix="/api/campaigns/{campaignId}", tags=["participation"])  # the doors (public plane)
lookup_router = APIRouter(prefix="/api/campaigns/{campaignId}", tags=["participation"])  # every plane
bench_router = APIRouter(prefix="/api/campaigns/{campaignId}", tags=["benchmark"])
CampaignIdPath = Annotated[CampaignId, Path(alias="campaignId")]


def _idempotency_key(
    key: Annotated[
        str | None,
        Header(
            alias="Idempotency-Key",
            json_schema_extra={"pattern": f"^{IDEMPOTENCY_KEY.pattern}$", "minLength": 1, "maxLength": 64},
            description="1 to 64 visible ASCII characters: every retry with the same key (same campaign and "
            "user) is the same request, with the same requestId, decided at most once",
        ),
    ] = None,
) -> str | None:
    if key is not None and IDEMPOTENCY_KEY.fullmatch(key) is None:
        raise invalid("Idempotency-Key", IDEMPOTENCY_KEY_PROBLEM)
    return key


IdempotencyKey = Annotated[str | None, Depends(_idempotency_key)]


async def _participant(body: ParticipationRequest, intake: IntakeDep, request: Request) -> int:
    """The user who takes part: the body's userId, or with USER_AUTH=jwt the bearer token's user."""
    headers = request.headers
    return identify(intake.tokens, headers.get("authorization"), body.user_id, intake.proofs, headers.get(HEADER))


Participant = Annotated[int, Depends(_participant)]
DOOR_ERRORS = errors(
    400,
    404,
    408,
    409,
    413,
    422,
    _401="USER_AUTH=jwt: no valid bearer token (UNAUTHENTICATED)",
    _403="USER_AUTH=jwt: the body's userId is not the token's user (USER_MISMATCH)",
    _404="CAMPAIGN_NOT_FOUND",
    _409="WRONG_CHANNEL (the campaign takes part through the other door), CAMPAIGN_NOT_STARTED, CAMPAIGN_ENDED, "
    "CAMPAIGN_PAUSED (with Retry-After)",
    _429="RATE_LIMITED: over the client's or the user's rate, or too many of the client's bodies still arriving, "
    "with Retry-After",
)
STATE_LINK = {
    "participationState": link("participationState", campaignId="data.campaignId", requestId="data.requestId")
}


def served_by_the_door() -> Exception:
    """The two Kafka-path operations are declared here for the OpenAPI document only: the participation door
    (backend/door/handler.py) answers their path before a request reaches the app, so their bodies never run."""
    return RuntimeError("POST …/participation is answered by the participation door, never by the app")


@router.post(
    "/participation",
    status_code=202,
    summary="Take part (Kafka path): 202 once Kafka has the request",
    operation_id="participate",
    description="Served by the participation door (backend/door/handler.py) in front of the app, same contract.",
    responses={
        **ok(202, AcceptedParticipation, links=STATE_LINK),
        **DOOR_ERRORS,
        **errors(
            _503="KAFKA_UNAVAILABLE: Kafka did not acknowledge in time, not known to be accepted. data.status is "
            "NOT_ACCEPTED (Kafka certainly does not have it) or UNKNOWN (it may still be decided); data.requestId is "
            "the request's id: retry with the same Idempotency-Key, or look it up"
        ),
    },
)
async def participate(campaign_id: CampaignIdPath, user_id: Participant, key: IdempotencyKey) -> Response:
    raise served_by_the_door()


@bench_router.post(
    "/participation-noop",
    status_code=202,
    summary="Benchmark baseline (BENCH_ENDPOINTS=true): the Kafka path without Kafka; nothing is recorded",
    responses={**ok(202, AcceptedParticipation), **DOOR_ERRORS},
)
async def participate_noop(campaign_id: CampaignIdPath, user_id: Participant) -> Response:
    raise served_by_the_door()


@router.post(
    "/participation-sync",
    summary="Take part (synchronous): decided in one database transaction",
    operation_id="participateSync",
    responses={**ok(200, SyncParticipation, links=STATE_LINK), **DOOR_ERRORS, **errors(503)},
)
def participate_sync(
    campaign_id: CampaignIdPath,
    user_id: Participant,
    engine: EngineDep,
    signer: SignerDep,
    intake: IntakeDep,
    request: Request,
    key: IdempotencyKey,
) -> Response:
    intake.limits.check(client_address(request), user_id)
    event = signed_event(signer, campaign_id, user_id, key)
    try:
        outcome = decide_now(engine, event)
    except UnknownCampaign:
        raise campaign_not_found(campaign_id) from None
    except WrongChannel as exc:
        raise wrong_channel(campaign_id, exc.mode.value) from None
    except CampaignClosed as exc:
        raise closed(campaign_id, exc.status) from None
    except CampaignPaused:
        raise campaign_paused(campaign_id) from None
    return envelope({**reply(event, outcome.value), "method": "SYNC"}, "participation decided")


@lookup_router.get(
    "/participation/{requestId}",
    summary="The outcome of a request: PENDING until the worker has decided it; with waitSeconds, held until then",
    operation_id="participationState",
    description="On the public door, served by the participation door (backend/door/handler.py), same contract.",
    responses={
        **ok(200, ParticipationState),
        **errors(
            422,
            _404="REQUEST_NOT_FOUND: an id this system never issued for this campaign",
            _429="TOO_MANY_WAITING: waitSeconds, and this client already waits for WAIT_MAX_PER_CLIENT outcomes "
            "at once (Retry-After)",
            _503="WAITING_FULL: waitSeconds, and this process already holds WAIT_MAX_HELD look-ups (Retry-After); "
            "LOOKUPS_BUSY: 256 look-ups already wait for a database read in this process (Retry-After); "
            "DATABASE_UNAVAILABLE",
        ),
    },
)
async def participation_state(
    campaign_id: CampaignIdPath,
    request_id: Annotated[str, Path(alias="requestId", max_length=64)],
    request: Request,
    partition: Annotated[int | None, Query(ge=0, le=100_000, description="the ticket's partition (the 202's)")] = None,
    offset: Annotated[int | None, Query(ge=0, le=2**63 - 1, description="the ticket's offset (the 202's)")] = None,
    wait_seconds: Annotated[
        float,
        Query(
            alias="waitSeconds",
            ge=0,
            le=MAX_WAIT_S,
            description="hold the answer until the request is decided (answered within about a second of it) or "
            "this many seconds have passed (then PENDING)",
        ),
    ] = 0.0,
) -> Response:
    """PENDING with how long it has waited and, given its ticket, how many requests of its partition the worker
    has still to decide before it (`ahead`) and when it will be at the current rate (`etaSeconds`); once
    decided, its outcome, its place among the campaign's decided requests and the winners before it."""
    lookups: Lookups = request.app.state.lookups
    data = await lookups.look_up(
        campaign_id, request_id, client=client_address(request), partition=partition, offset=offset, wait_s=wait_seconds
    )
    return envelope(data)


@router.post(
    "/participation/{requestId}/claim",
    summary="Claim a win: in a campaign with claimSeconds, a win not claimed in time goes to the next in line",
    operation_id="claimWin",
    responses={
        **ok(200, Claim),
        **errors(
            400,
            408,
            413,
            422,
            _401="USER_AUTH=jwt: no valid bearer token (UNAUTHENTICATED)",
            _403="NOT_YOUR_REQUEST: the request is another user's; USER_MISMATCH: the body's userId is not the "
            "token's user",
            _404="REQUEST_NOT_FOUND: an id this system never issued for this campaign",
            _409="NOT_A_WINNER (PENDING, FAIL or DUPLICATE: data.status), CLAIM_EXPIRED (not claimed in time), "
            "CLAIM_NOT_NEEDED (the campaign's winners need not claim)",
            _429="RATE_LIMITED: over the client's or the user's rate (Retry-After)",
            _503="DATABASE_UNAVAILABLE",
        ),
    },
)
def claim_win(
    campaign_id: CampaignIdPath,
    request_id: Annotated[str, Path(alias="requestId", max_length=64)],
    user_id: Participant,
    engine: EngineDep,
    signer: SignerDep,
    intake: IntakeDep,
    request: Request,
) -> Response:
    """The same identity as taking part (the body's userId, or the bearer token's user) and the same limits; a
    claim of a claimed win answers the same claim again. Locks the win's claim row only, never the campaign."""
    intake.limits.check(client_address(request), user_id)
    issued = signer.verify(campaign_id, request_id)
    if issued is None:
        raise request_not_found()
    if issued.user_id != user_id:
        raise not_your_request(request_id)
    try:
        won = claim(engine, campaign_id=campaign_id, request_id=request_id, now=utcnow())
    except ClaimRefused as exc:
        raise claim_refused(exc.code, request_id, exc.status) from None
    data = {
        "requestId": request_id,
        "campaignId": campaign_id,
        "userId": user_id,
        "status": "SUCCESS",
        "promoted": won.promoted,
        "claim": ClaimView.of(won.deadline, won.claimed_at, None, won.promoted).json(),
    }
    return envelope(data, "claimed already" if won.again else "claimed")
