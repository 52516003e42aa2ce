"""Request bodies and response shapes of the API (camelCase on the wire)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, model_validator
from pydantic.alias_generators import to_camel

from fcfs.claims import MAX_CLAIM_SECONDS
from fcfs.draw import MAX_PRE_QUEUE_SECONDS
from fcfs.events import MAX_USER_ID
from fcfs.schema import Channel, PreQueueOrder
from fcfs.simulated import FIRST_SIMULATED_USER


class CamelModel(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")


UserId = Annotated[StrictInt, Field(ge=1, le=MAX_USER_ID, description="a positive integer up to 2^53 - 1")]
CampaignId = Annotated[int, Field(ge=1, le=2**63 - 1)]


class ParticipationRequest(CamelModel):
    user_id: Annotated[
        UserId | None, Field(description="required with USER_AUTH=none; with USER_AUTH=jwt optional (the token's user)")
    ] = None


class CampaignCreate(CamelModel):
    name: Annotated[str, Field(min_length=1, max_length=200)]
    total_stock: Annotated[StrictInt, Field(ge=1, le=100_000_000)]
    mode: Annotated[
        Channel, Field(description="KAFKA (default): POST …/participation; SYNC: POST …/participation-sync")
    ] = Channel.KAFKA
    starts_at: dt.datetime | None = None
    ends_at: dt.datetime | None = None
    weight: Annotated[
        StrictInt,
        Field(
            ge=1,
            le=1_000_000,
            description="its expected share of the traffic relative to other campaigns: placement puts a new "
            "campaign on the partition with the least weight of live campaigns",
        ),
    ] = 1
    partition: Annotated[
        StrictInt | None,
        Field(ge=0, le=100_000, description="place it on this partition instead (KAFKA mode); fixed for its life"),
    ] = None
    paused: Annotated[
        StrictBool, Field(description="created paused: its doors refuse (409 CAMPAIGN_PAUSED) until resumed")
    ] = False
    claim_seconds: Annotated[
        StrictInt,
        Field(
            ge=0,
            le=MAX_CLAIM_SECONDS,
            description="each win must be claimed (POST …/participation/{requestId}/claim) within this many seconds "
            "of its decision, else it is released to the next in line (0: no claim needed)",
        ),
    ] = 0
    pre_queue_seconds: Annotated[
        StrictInt,
        Field(
            ge=0,
            le=MAX_PRE_QUEUE_SECONDS,
            description="a fair opening: requests this many seconds before startsAt are accepted and held, then "
            "decided at the opening in preQueueOrder (0: none; needs startsAt, KAFKA mode)",
        ),
    ] = 0
    pre_queue_order: Annotated[
        PreQueueOrder,
        Field(
            description="FIFO: the pre-queue in log order; DRAW: in the order of a draw whose seed is committed now "
            "(drawCommitment) and revealed after the draw (drawSeed)"
        ),
    ] = PreQueueOrder.FIFO

    @model_validator(mode="after")
    def window_in_order(self) -> CampaignCreate:
        for name, value in (("startsAt", self.starts_at), ("endsAt", self.ends_at)):
            if value is not None and not EARLIEST_TIME <= _aware(value) < LATEST_TIME:
                raise ValueError(f"{name} must be from {EARLIEST_TIME:%Y-%m-%d} to {LATEST_TIME:%Y-%m-%d} (UTC)")
        if self.starts_at and self.ends_at and _aware(self.ends_at) <= _aware(self.starts_at):
            raise ValueError("endsAt must be after startsAt")
        if not self.name.strip():
            raise ValueError("name must not be blank")
        if self.pre_queue_seconds and self.starts_at is None:
            raise ValueError("a pre-queue (preQueueSeconds) needs startsAt: it is decided at the opening")
        if self.pre_queue_seconds and self.mode is Channel.SYNC:
            raise ValueError("a pre-queue (preQueueSeconds) needs KAFKA mode: it is held in the log's order")
        if self.starts_at and self.pre_queue_seconds:
            opens = _aware(self.starts_at) - dt.timedelta(seconds=self.pre_queue_seconds)
            if opens < EARLIEST_TIME:
                raise ValueError(f"the pre-queue must open after {EARLIEST_TIME:%Y-%m-%d} (UTC)")
        return self


class CampaignChange(CamelModel):
    """What an operator may change during the event besides the switches: the end (null: no end)."""

    ends_at: Annotated[dt.datetime | None, Field(description="the new end; in the past ends the campaign now")]

    @model_validator(mode="after")
    def in_range(self) -> CampaignChange:
        if self.ends_at is not None and not EARLIEST_TIME <= _aware(self.ends_at) < LATEST_TIME:
            raise ValueError(f"endsAt must be from {EARLIEST_TIME:%Y-%m-%d} to {LATEST_TIME:%Y-%m-%d} (UTC)")
        return self


class StockAdded(CamelModel):
    add: Annotated[
        StrictInt,
        Field(
            ge=1,
            le=100_000,
            description="units to add (at most 100,000 a call): the earliest FAILs win them first, then new arrivals",
        ),
    ]


class BulkParticipationRequest(CamelModel):
    count: Annotated[StrictInt, Field(ge=1, le=10**9)]
    campaign_id: Annotated[StrictInt, Field(ge=1, le=2**63 - 1)]
    # the first user's number in the simulated range (1: its first user, 2^52): a bulk load is never real users
    user_id_start: Annotated[
        StrictInt | None,
        Field(ge=1, le=MAX_USER_ID - FIRST_SIMULATED_USER + 1, description="the first simulated user's number"),
    ] = None


# A campaign's window lies where every time zone can express it and a DATETIME can store it.
EARLIEST_TIME = dt.datetime(1970, 1, 2, tzinfo=dt.UTC)
LATEST_TIME = dt.datetime(9999, 12, 30, tzinfo=dt.UTC)


def _aware(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)
