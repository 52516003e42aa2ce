"""What every operation answers, for the OpenAPI document: the envelope with its typed `data`, and the
error answers with their errorCodes. Handlers render plain dicts with orjson; these models describe
them (the schema fuzzing test checks every answer against them)."""

from __future__ import annotations

from typing import Any, Generic, Literal, TypeVar

from fastapi import FastAPI
from pydantic import BaseModel, Field

from backend.app.errors import CODES

T = TypeVar("T")
OutcomeName = Literal["SUCCESS", "FAIL", "DUPLICATE"]
CampaignState = Literal["SCHEDULED", "PRE_QUEUE", "OPEN", "SOLD_OUT", "ENDED"]


class ApiResponse(BaseModel, Generic[T]):
    """The envelope every answer comes in."""

    success: bool
    message: str
    errorCode: str | None
    data: T


# -- participation ------------------------------------------------------------------------------------


class AcceptedParticipation(BaseModel):
    """The request is in the log: `partition` and `offset` are its place there as Kafka assigned it (its ticket:
    the worker decides the campaign's requests in this order)."""

    requestId: str
    campaignId: int
    userId: int
    status: Literal["PENDING"]
    partition: int | None = Field(None, description="the Kafka partition holding the request (absent: not queued)")
    offset: int | None = Field(None, description="its offset in that partition: its place in line")
    preQueued: bool | None = Field(
        None, description="true: taken in the campaign's pre-queue, decided at the opening in its preQueueOrder"
    )


class SyncParticipation(BaseModel):
    requestId: str
    campaignId: int
    userId: int
    status: OutcomeName
    method: Literal["SYNC"]


class ParticipationState(BaseModel):
    requestId: str
    campaignId: int
    userId: int
    status: Literal["PENDING", "SUCCESS", "FAIL", "DUPLICATE", "RELEASED"] = Field(
        description="RELEASED: a win not claimed in time (its unit went to the next in line)"
    )
    waitingMs: int | None = Field(None, description="PENDING: since the id was issued (absent for a keyed id)")
    ahead: int | None = Field(
        None, description="PENDING, with the ticket: requests of its partition still to be decided before it"
    )
    etaSeconds: float | None = Field(
        None, description="PENDING, with the ticket: ahead ÷ the partition's recent decisions per second (null: none)"
    )
    place: int | None = Field(None, description="decided: its place among the campaign's decided requests, from 1")
    winnersBefore: int | None = Field(None, description="decided: the campaign's winners decided before it")
    partition: int | None = Field(None, description="decided: the Kafka partition it was decided from")
    offset: int | None = Field(None, description="decided: its offset there")
    promoted: bool | None = Field(
        None,
        description="decided: true for a FAIL that won later — a unit released by a winner who did not claim it, "
        "or stock added (the earliest FAILs first)",
    )
    claim: ClaimState | None = Field(
        None, description="SUCCESS or RELEASED, in a campaign whose winners must claim (claimSeconds > 0)"
    )
    preQueued: bool | None = Field(
        None, description="PENDING: true while it waits in the campaign's pre-queue for the draw at the opening"
    )


class ClaimState(BaseModel):
    state: Literal["UNCLAIMED", "CLAIMED", "RELEASED"]
    deadline: str = Field(description="claim by then (ISO 8601, UTC, to the millisecond)")
    claimedAt: str | None = Field(None, description="CLAIMED: when (ISO 8601, UTC)")


class AlertPublic(BaseModel):
    id: int
    kind: Literal[
        "LAG_STALLED",
        "WORKER_LOST",
        "DEAD_LETTERS_GROWING",
        "DOOR_UNAVAILABLE",
        "DATABASE_UNAVAILABLE",
        "SOLD_OUT",
        "CROWD_FINISHED",
    ]
    subject: str
    text: str
    state: Literal["FIRING", "RESOLVED", "EVENT"]
    openedAt: str
    resolvedAt: str | None
    delivered: bool = Field(description="every webhook has what is due (its firing; once resolved, that too)")
    attempts: int = Field(description="failed deliveries in a row (retried with a growing pause)")
    lastError: str | None


class ClaimsSecond(BaseModel):
    ts: int
    won: int
    claimed: int
    released: int


class ClaimsSummary(BaseModel):
    wins: int = Field(description="wins so far, promoted ones included (one claim row each)")
    claimed: int
    released: int = Field(description="not claimed in time: their units went to the next in line")
    waiting: int = Field(description="wins neither claimed nor released yet")
    promoted: int = Field(description="wins that came from a release or added stock")
    perSecond: list[ClaimsSecond] = Field(description="the newest 3,600 seconds with a win, claim or release")


class Claim(BaseModel):
    requestId: str
    campaignId: int
    userId: int
    status: Literal["SUCCESS"]
    promoted: bool
    claim: ClaimState


# -- campaigns -----------------------------------------------------------------------------------------


class Campaign(BaseModel):
    id: int
    name: str
    totalStock: int
    currentStock: int
    status: CampaignState
    mode: Literal["KAFKA", "SYNC"]
    partition: int | None
    weight: int
    startsAt: str | None
    endsAt: str | None
    soldOutAt: str | None
    createdAt: str | None
    paused: bool = Field(description="paused by its operators: the doors answer 409 CAMPAIGN_PAUSED")
    claimSeconds: int = Field(description="each win must be claimed within this long of its decision (0: no claim)")
    releasedCount: int = Field(description="wins released so far, not claimed in time")
    preQueueSeconds: int = Field(description="requests this long before startsAt are held for the opening (0: none)")
    preQueueOrder: Literal["FIFO", "DRAW"] = Field(description="how the pre-queue is decided at the opening")
    preQueuedCount: int = Field(description="requests held in the pre-queue so far")
    drawCommitment: str | None = Field(description="DRAW: hex SHA-256 of the draw's seed, published from creation")
    drawSeed: str | None = Field(description="DRAW: the seed (hex), once the pre-queue is drawn")
    drawnAt: str | None = Field(description="when the pre-queue was decided")
    preQueueDigest: str | None = Field(description="hex SHA-256 of the drawn pre-queue's content (fcfs/draw.py)")
    drawWinners: int | None = Field(description="winners the draw decided")


class HeldSecond(BaseModel):
    ts: int = Field(description="a second of arrival, epoch seconds")
    held: int = Field(description="requests taken into the pre-queue in that second")
    total: int = Field(description="held so far")


class DrawState(BaseModel):
    """A campaign's fair opening (see fcfs/draw.py); checked with `python -m fcfs.draw verify`."""

    campaignId: int
    startsAt: str | None
    preQueueSeconds: int
    preQueueOrder: Literal["FIFO", "DRAW"]
    preQueuedCount: int
    drawCommitment: str | None
    drawSeed: str | None
    drawnAt: str | None
    preQueueDigest: str | None
    drawWinners: int | None
    perSecond: list[HeldSecond]
    verify: str = Field(description="the command that recomputes the draw from this, the pre-queue and the winners")


class Switch(BaseModel):
    """One operator's switch during the event, as the switch log recorded it."""

    id: int
    campaignId: int
    ts: float = Field(description="when, epoch seconds")
    at: str
    action: Literal["PAUSE", "RESUME", "END", "MOVE_END", "ADD_STOCK", "DRAW"]
    actor: str = Field(description="the caller's X-Operator header, else 'admin API'")
    address: str
    endsAtBefore: str | None
    endsAtAfter: str | None
    stockAdded: int | None = Field(description="ADD_STOCK: the units added")
    promoted: int | None = Field(description="ADD_STOCK: how many of them went to the earliest FAILs at once")


class StockAddedAnswer(BaseModel):
    campaign: Campaign
    promoted: int = Field(description="FAILs that became SUCCESS, the earliest first")


class CampaignStatusPublic(BaseModel):
    campaignId: int
    campaignName: str
    totalStock: int
    currentStock: int
    successCount: int
    failCount: int
    duplicateCount: int
    totalParticipation: int
    stockUsageRate: str
    status: CampaignState
    paused: bool
    releasedCount: int


class TimelinePoint(BaseModel):
    ts: int
    success: int
    fail: int
    duplicate: int
    cumulativeSuccess: int
    cumulativeFail: int
    cumulativeDuplicate: int
    stockLeft: int


class IntakePoint(BaseModel):
    """What the door answered in one second: accepted (202), unavailable (503), limited (429)."""

    ts: int
    accepted: int
    unavailable: int
    limited: int


class TimelineSwitch(BaseModel):
    """When an operator switched the campaign and what (who: the operators' plane's switch log)."""

    ts: float
    action: Literal["PAUSE", "RESUME", "END", "MOVE_END", "ADD_STOCK", "DRAW"]


class Timeline(BaseModel):
    campaignId: int
    totalStock: int
    points: list[TimelinePoint]
    intake: list[IntakePoint]
    databaseUnavailable: list[int]  # epoch seconds in which an API process could not reach the database
    switches: list[TimelineSwitch]  # the operators' switches (pause, resume, end, a moved end) in the same span


class BulkPublished(BaseModel):
    campaignId: int
    requestCount: int
    firstUserId: int
    status: Literal["PUBLISHED"]


class Winner(BaseModel):
    position: int
    userId: int
    requestId: str
    decidedAt: str | None
    kafkaPartition: int | None
    kafkaOffset: int | None
    simulated: bool  # a user of the simulated range (the crowd simulator, the bulk load), not a person
    claimedAt: str | None = Field(None, description="a campaign whose winners must claim: when this one did")
    promoted: bool = Field(False, description="won later: a unit released, or stock added (the earliest FAILs first)")


class Winners(BaseModel):
    campaignId: int
    totalWinners: int
    winners: list[Winner]
    nextCursor: str | None


class UserRequest(BaseModel):
    requestId: str
    status: OutcomeName
    channel: Literal["KAFKA", "SYNC"]
    requestedAt: str | None
    decidedAt: str | None
    kafkaPartition: int | None
    kafkaOffset: int | None
    winnersBefore: int


class ParticipantLookup(BaseModel):
    campaignId: int
    userId: int
    simulated: bool
    totalStock: int
    winners: int
    soldOutAt: str | None
    requests: list[UserRequest]
    undecided: list[str]


class DemoJob(BaseModel):
    date: str
    jobExecutionId: int
    status: Literal["STARTED", "COMPLETED", "PARTIAL", "FAILED"]


class DemoHistory(BaseModel):
    label: str
    campaigns: int
    campaignIds: list[int]
    rows: int
    seconds: float
    jobs: list[DemoJob]


class CrowdSecond(BaseModel):
    at: str
    sent: int
    accepted: int
    refused: int
    failed: int
    p50Ms: float | None
    p95Ms: float | None
    p99Ms: float | None


class CrowdRun(BaseModel):
    runId: int
    campaignId: int
    targetUrl: str
    users: int
    seconds: float
    repeatShare: float
    shape: Literal["flat", "rush"]
    connections: int
    planned: int  # clicks in all: users and their repeats
    status: Literal["STARTING", "RUNNING", "FINISHED", "STOPPED", "FAILED", "LOST"]
    stopRequested: bool
    sent: int
    accepted: int  # the door's success answers (202, or 200 on a synchronous campaign)
    refused: int  # any other answer
    failed: int  # no answer in time
    answers: dict[str, int]  # by status and errorCode: {"202": n, "429 RATE_LIMITED": n, "no answer": n}
    p50Ms: float | None
    p95Ms: float | None
    p99Ms: float | None
    maxMs: float | None
    behindS: float  # how far the crowd fell behind its schedule (the door or this machine too slow)
    waitShare: float  # the share of users who wait for their outcome after the 202 (the held look-up)
    outcomes: dict[str, int]  # what the waiting users learned: {"SUCCESS": n, "FAIL": n, "no outcome": n}
    outcomeP50Ms: float | None  # from the click to the outcome, for the users who waited
    outcomeP95Ms: float | None
    outcomeP99Ms: float | None
    outcomeMaxMs: float | None
    error: str | None
    createdAt: str | None
    startedAt: str | None
    endedAt: str | None
    heartbeatAt: str | None
    perSecond: list[CrowdSecond] | None = None


# -- the aggregation job and statistics ----------------------------------------------------------------


class JobStarted(BaseModel):
    jobExecutionId: int
    status: Literal["STARTED"]
    date: str


class Job(BaseModel):
    jobExecutionId: int
    jobName: str
    date: str
    trigger: Literal["SCHEDULED", "MANUAL"]
    status: Literal["STARTED", "COMPLETED", "PARTIAL", "FAILED"]
    startedAt: str | None
    endedAt: str | None
    durationMs: int | None
    campaignsTotal: int | None
    campaignsFailed: int | None
    campaignResults: list[dict[str, Any]]
    error: str | None


class CountsPublic(BaseModel):
    successCount: int
    failCount: int
    duplicateCount: int
    totalCount: int
    successRate: float


class Summary(CountsPublic):
    campaignCount: int


class CampaignStats(CountsPublic):
    campaignId: int
    campaignName: str
    uniqueUsers: int | None = None
    sellOutSeconds: float | None = Field(
        None, description="seconds from its first request to its sell-out on the day (null: it did not sell out then)"
    )


class DayStats(CampaignStats):
    date: str


class Statistics(BaseModel):
    """One day (`date`) or a period (`from`, `to`, per-day `rows`)."""

    method: Literal["BATCH_AGGREGATED", "RAW_QUERY"]
    queryTimeMs: float
    date: str | None = None
    from_: str | None = Field(None, alias="from")
    to: str | None = None
    campaignId: int | None = None
    summary: Summary
    campaigns: list[CampaignStats]
    rows: list[DayStats] | None = None


# -- operations ----------------------------------------------------------------------------------------


class Worker(BaseModel):
    workerId: str
    consumerGroup: str
    topic: str
    partitions: list[int]
    state: str  # as the worker last reported it
    status: str  # STOPPED (left cleanly), LOST (heartbeat too old), or the state
    alive: bool
    decidedTotal: int
    deadLetteredTotal: int
    batchesTotal: int
    dbRetriesTotal: int
    lastBatchAt: str | None
    heartbeatAt: str | None
    startedAt: str | None


LagStatus = Literal["OK", "WARN", "STALLED", "UNKNOWN"]


class PartitionLag(BaseModel):
    partition: int
    endOffset: int
    committedOffset: int
    lag: int
    status: LagStatus
    liveCampaigns: int  # campaigns placed here that still take part (not ended, not sold out)
    liveWeight: int  # their summed weight: the load placement balances


class KafkaState(BaseModel):
    topic: str
    consumerGroup: str
    groupState: str | None
    totalLag: int
    partitions: list[PartitionLag]
    decidedPerSecond: float
    status: LagStatus


class LagSample(BaseModel):
    ts: int
    endOffset: int
    committedOffset: int
    lag: int


class PartitionLagHistory(BaseModel):
    partition: int
    samples: list[LagSample]


class LagHistory(BaseModel):
    topic: str
    partitions: list[PartitionLagHistory]


class DeadLetterPublic(BaseModel):
    dlqPartition: int
    dlqOffset: int
    timestamp: int | None
    code: str
    reason: str
    sourceTopic: str | None
    sourcePartition: int | None
    sourceOffset: int | None
    key: str | None
    value: str | None
    valueEncoding: str
    valueSize: int
    valueComplete: bool
    replayed: bool
    truncated: bool | None = None
    originalSize: int | None = None
    originalSha256: str | None = None


class DeadLetters(BaseModel):
    topic: str
    deadLetters: list[DeadLetterPublic]


class ReplayResult(BaseModel):
    dlqPartition: int
    dlqOffset: int
    status: Literal["REPLAYED", "ALREADY_REPLAYED", "NOT_FOUND", "TRUNCATED", "FAILED"]
    targetPartition: int | None = None
    targetOffset: int | None = None
    error: str | None = None


class Replayed(BaseModel):
    replayed: int
    results: list[ReplayResult]


class Health(BaseModel):
    status: Literal["UP", "DOWN"]
    checks: dict[str, Literal["UP", "DOWN"]] | None = None


# -- errors --------------------------------------------------------------------------------------------


class FieldProblem(BaseModel):
    field: str
    problem: str


class ErrorResponse(BaseModel):
    """Every refusal: `success` false, a stable `errorCode` to match on, a message for people, and
    `data` where there is more to say (the fields at fault, the request id of an ambiguous 503)."""

    success: Literal[False]
    message: str
    errorCode: str
    data: Any = None


_NOTES = {
    400: "malformed input",
    401: "not signed in (WWW-Authenticate: Bearer)",
    403: "not yours",
    404: "not found",
    405: "method not allowed",
    408: "the body did not arrive within BODY_TIMEOUT_S (the connection is closed)",
    409: "conflict",
    413: "the body is over MAX_BODY_BYTES",
    415: "unsupported media type",
    422: "data.errors lists each field and its problem",
    429: "too many, slow down (Retry-After)",
    500: "no details (the log has them)",
    503: "a dependency is down, try again (Retry-After)",
}
# each status's description names its codes, from the error catalogue
_ERRORS = {
    status: f"{note}: {', '.join(c for c, of in CODES.items() if of == status)}" for status, note in _NOTES.items()
}


def errors(*codes: int, **described: str) -> dict[int | str, dict[str, Any]]:
    """The error answers of an operation; `described` replaces a code's description (`_409="…"`)."""
    answers: dict[int | str, dict[str, Any]] = {
        code: {"model": ErrorResponse, "description": _ERRORS[code]} for code in codes
    }
    for name, text in described.items():
        answers[int(name.lstrip("_"))] = {"model": ErrorResponse, "description": text}
    return answers


def link(operation_id: str, **parameters: str) -> dict[str, Any]:
    """An OpenAPI link: where a value of this answer goes in the next call (`data.id` → `$response.body#/data/id`)."""
    return {
        "operationId": operation_id,
        "parameters": {name: "$response.body#/" + path.replace(".", "/") for name, path in parameters.items()},
    }


def ok(status: int, model: Any, **extra: Any) -> dict[int | str, dict[str, Any]]:
    """The success answer of an operation: the envelope around `model`."""
    return {status: {"model": ApiResponse[model], **extra}}


def document_identity(app: FastAPI, user_auth: str) -> None:
    """The served OpenAPI document says what this configuration requires: with USER_AUTH=none the body's
    userId is required (it is the only way to say who takes part); with jwt, a bearer token is."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = build()  # cached by FastAPI as app.openapi_schema: changed in place below
        body = schema.get("components", {}).get("schemas", {}).get("ParticipationRequest")
        if body is None:  # the operators' plane: no participation door
            return schema
        if user_auth == "none":
            user_id = body["properties"]["userId"]
            integer = next(branch for branch in user_id.pop("anyOf") if branch.get("type") == "integer")
            user_id.update({**integer, "description": "the user who takes part (USER_AUTH=none)"})
            body["required"] = ["userId"]
        else:
            schemes = schema["components"].setdefault("securitySchemes", {})
            schemes["UserToken"] = {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
            for path, operations in schema["paths"].items():
                if path.endswith(("/participation", "/participation-sync")):
                    for operation in operations.values():
                        operation["security"] = [{"UserToken": []}]
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
