"""Campaigns: the list, one campaign, creating one (placed on a partition), whether one exists, its timeline."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Engine, Row, select

from backend.app.outages import outage_seconds
from backend.door.intake_seconds import intake_points
from backend.queries.timeline import campaign_timeline
from fcfs.epoch import epoch_seconds
from fcfs.placement import choose_partition, live_load, placement_lock
from fcfs.schema import campaign, campaign_switch


def list_campaigns(engine: Engine, *, limit: int | None = None) -> Sequence[Row[Any]]:
    """Newest first."""
    with engine.connect() as conn:
        return conn.execute(select(campaign).order_by(campaign.c.id.desc()).limit(limit)).all()


def get_campaign(engine: Engine, *, campaign_id: int) -> Row[Any] | None:
    with engine.connect() as conn:
        return conn.execute(select(campaign).where(campaign.c.id == campaign_id)).first()


def campaign_exists(engine: Engine, *, campaign_id: int) -> bool:
    with engine.connect() as conn:
        return conn.scalar(select(campaign.c.id).where(campaign.c.id == campaign_id)) is not None


def create_campaign(engine: Engine, *, values: dict[str, Any], partitions: int, partition: int | None) -> Row[Any]:
    """A new campaign row. With `partitions` (a Kafka campaign) it is placed on `partition`, or on the partition
    with the least weight of live campaigns — chosen and written under the placement lock, so two campaigns
    created at once do not both pick the same least-loaded partition."""
    with engine.connect() as conn, placement_lock(conn), conn.begin():
        if partitions:
            chosen = partition if partition is not None else choose_partition(live_load(conn, partitions))
            values = {**values, "kafka_partition": chosen}
        new_id = conn.execute(campaign.insert().values(**values)).inserted_primary_key[0]  # type: ignore[index]
        return conn.execute(select(campaign).where(campaign.c.id == new_id)).one()


def timeline(engine: Engine, *, campaign_id: int, since: dt.datetime | None, limit: int) -> dict[str, Any]:
    """The Live page's curves: decisions per second with running totals, the door's answers per second, the
    seconds the API found the database unavailable, the operators' switches (when and what; who is on the
    operators' plane only) — all from one connection. LookupError: no such campaign."""
    with engine.connect() as conn:
        total_stock, points = campaign_timeline(conn, campaign_id, since, limit)
        intake = intake_points(conn, campaign_id, since, limit)
        created: dt.datetime = conn.execute(
            select(campaign.c.created_at).where(campaign.c.id == campaign_id)
        ).scalar_one()
        outages = outage_seconds(conn, created if since is None else max(since, created), limit)
        log = campaign_switch.c
        recent = select(log.at, log.action).where(log.campaign_id == campaign_id)
        switched = [
            {"ts": epoch_seconds(row.at), "action": row.action.value}
            for row in conn.execute(
                (recent if since is None else recent.where(log.at >= since)).order_by(log.id).limit(limit)
            )
        ]
    return {
        "campaignId": campaign_id,
        "totalStock": total_stock,
        "points": points,
        "intake": intake,
        "databaseUnavailable": outages,
        "switches": switched,
    }
