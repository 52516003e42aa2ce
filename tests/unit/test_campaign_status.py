"""A campaign's status follows from its window and its stock."""

from __future__ import annotations

import datetime as dt

from fcfs.campaigns import CampaignStatus, campaign_status

NOW = dt.datetime(2026, 1, 1, 12, 0)
HOUR = dt.timedelta(hours=1)


def test_status_follows_window_and_stock() -> None:
    assert campaign_status(None, None, 5, NOW) is CampaignStatus.OPEN
    assert campaign_status(None, None, 0, NOW) is CampaignStatus.SOLD_OUT
    assert campaign_status(NOW + HOUR, None, 5, NOW) is CampaignStatus.SCHEDULED
    assert campaign_status(NOW - HOUR, NOW, 5, NOW) is CampaignStatus.ENDED  # the end is exclusive
    assert campaign_status(NOW - HOUR, NOW + HOUR, 0, NOW) is CampaignStatus.SOLD_OUT
