"""The operators' switches during the event — pause, resume, end now, move the end, add stock — and their log.

A switch changes the campaign row and appends its record to `campaign_switch` in one transaction, under the
campaign's row lock (the lock the worker takes to decide a batch): the log holds exactly the switches that took
effect, in the order they did. A switch that changes nothing (pausing a paused campaign, ending an ended one,
moving the end to where it is) is answered without a record.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, Row, insert, select, update

from fcfs.claims import count_second, promote
from fcfs.schema import SwitchAction, campaign, campaign_switch

MAX_STOCK = 100_000_000  # a campaign's stock at most (as at creation)
ADD_AT_ONCE = 100_000  # units added by one call at most: the promotion is one transaction under the campaign's lock


class SwitchRefused(ValueError):
    """The switch cannot apply to this campaign as it is (e.g. an end before its start)."""


@dataclass(frozen=True)
class Switched:
    campaign: Row[Any]  # the row after the switch
    changed: bool  # False: it was so already, nothing recorded


def planned(action: SwitchAction, row: Any, now: dt.datetime, ends_at: dt.datetime | None) -> dict[str, Any]:
    """The campaign columns the switch sets (empty: nothing to change). Raises SwitchRefused."""
    if action is SwitchAction.PAUSE:
        return {} if row.paused else {"paused": True}
    if action is SwitchAction.RESUME:
        return {"paused": False} if row.paused else {}
    if action is SwitchAction.END:
        if row.ends_at is not None and row.ends_at <= now:
            return {}
        not_started = row.starts_at is not None and row.starts_at > now  # ended before it opened
        return {"ends_at": now, **({"starts_at": now} if not_started else {})}
    if ends_at is not None and row.starts_at is not None and ends_at <= row.starts_at:
        raise SwitchRefused("endsAt must be after the campaign's startsAt")
    if ends_at is not None and ends_at < now:  # no end before what was taken: an end in the past ends it now
        ends_at = now  # (the nightly aggregation counts on no decision long before a campaign's end)
    if row.ends_at is not None and row.ends_at <= now and ends_at == now:
        return {}  # ended already: ending again changes nothing
    return {} if ends_at == row.ends_at else {"ends_at": ends_at}


def switch(
    engine: Engine,
    *,
    campaign_id: int,
    action: SwitchAction,
    actor: str,
    address: str,
    now: dt.datetime,
    ends_at: dt.datetime | None = None,
) -> Switched | None:
    """Apply `action` to the campaign (None: no such campaign); raises SwitchRefused."""
    with engine.begin() as conn:
        row = conn.execute(select(campaign).where(campaign.c.id == campaign_id).with_for_update()).first()
        if row is None:
            return None
        values = planned(action, row, now, ends_at)
        if not values:
            return Switched(row, changed=False)
        conn.execute(update(campaign).where(campaign.c.id == campaign_id).values(**values))
        conn.execute(
            insert(campaign_switch).values(
                campaign_id=campaign_id,
                at=now,
                action=action,
                actor=actor,
                address=address,
                ends_at_before=row.ends_at,
                ends_at_after=values.get("ends_at", row.ends_at),
            )
        )
        return Switched(conn.execute(select(campaign).where(campaign.c.id == campaign_id)).one(), changed=True)


def add_stock(
    engine: Engine, *, campaign_id: int, add: int, actor: str, address: str, now: dt.datetime
) -> tuple[Row[Any], int] | None:
    """Add `add` units to the campaign's stock (None: no such campaign), and the promoted count: the earliest FAILs
    — each a user's first request (I3), so a user without a win — become SUCCESS, in decision order, while the new
    units last; the rest go to new arrivals in log order, as the worker decides them (I2 with the stock as it is
    now). One transaction under the campaign's row lock, so no batch of the worker's comes between: winners never
    exceed the stock (I1's CHECKs hold at the commit). Raises SwitchRefused past MAX_STOCK."""
    with engine.begin() as conn:
        row = conn.execute(select(campaign).where(campaign.c.id == campaign_id).with_for_update()).first()
        if row is None:
            return None
        if row.total_stock + add > MAX_STOCK:
            raise SwitchRefused(f"the stock would be {row.total_stock + add:,}, over {MAX_STOCK:,}")
        promoted = promote(conn, campaign_id, row.current_stock + add, now, row.claim_seconds)
        left = row.current_stock + add - promoted
        conn.execute(
            update(campaign)
            .where(campaign.c.id == campaign_id)
            .values(
                total_stock=row.total_stock + add,
                current_stock=left,
                success_count=row.success_count + promoted,
                fail_count=row.fail_count - promoted,
                sold_out_at=(row.sold_out_at or now) if left == 0 else None,
            )
        )
        if promoted:
            count_second(conn, campaign_id, now, promoted, -promoted, left)
        conn.execute(
            insert(campaign_switch).values(
                campaign_id=campaign_id,
                at=now,
                action=SwitchAction.ADD_STOCK,
                actor=actor,
                address=address,
                ends_at_before=row.ends_at,
                ends_at_after=row.ends_at,
                stock_added=add,
                promoted=promoted,
            )
        )
        return conn.execute(select(campaign).where(campaign.c.id == campaign_id)).one(), promoted


def switches(engine: Engine, *, campaign_id: int, limit: int = 1000) -> Sequence[Row[Any]]:
    """The campaign's switches, oldest first (the last `limit`)."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(campaign_switch)
            .where(campaign_switch.c.campaign_id == campaign_id)
            .order_by(campaign_switch.c.id.desc())
            .limit(limit)
        ).all()
    return rows[::-1]
