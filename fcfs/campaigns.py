"""A campaign's lifecycle status, derived from its window and its stock."""

from __future__ import annotations

import datetime as dt
import enum


class CampaignStatus(enum.StrEnum):
    SCHEDULED = "SCHEDULED"  # before startsAt (and its pre-queue): participation refused
    PRE_QUEUE = "PRE_QUEUE"  # in the pre-queue before startsAt: requests accepted, held for the opening
    OPEN = "OPEN"  # taking part; winners while stock lasts
    SOLD_OUT = "SOLD_OUT"  # still taking part, every new participant is a FAIL
    ENDED = "ENDED"  # after endsAt: participation refused


def campaign_status(
    starts_at: dt.datetime | None,
    ends_at: dt.datetime | None,
    current_stock: int,
    now: dt.datetime,
    pre_queue_seconds: int = 0,
) -> CampaignStatus:
    if starts_at is not None and now < starts_at:
        if pre_queue_seconds and now >= starts_at - dt.timedelta(seconds=pre_queue_seconds):
            return CampaignStatus.PRE_QUEUE
        return CampaignStatus.SCHEDULED
    if ends_at is not None and now >= ends_at:
        return CampaignStatus.ENDED
    return CampaignStatus.SOLD_OUT if current_stock <= 0 else CampaignStatus.OPEN


def window_refusal(
    starts_at: dt.datetime | None, ends_at: dt.datetime | None, now: dt.datetime
) -> CampaignStatus | None:
    """SCHEDULED or ENDED when the campaign takes no participation at `now`; None when it does.

    A sold-out campaign still takes part: its new participants are decided FAIL.
    """
    status = campaign_status(starts_at, ends_at, 1, now)
    return status if status in (CampaignStatus.SCHEDULED, CampaignStatus.ENDED) else None
