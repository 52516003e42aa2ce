"""A campaign's claims as the Live page shows them: how many wins are claimed, waiting, released, promoted, and
when — read from the small `claim` table (one row per win), never the history."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine

SUMMARY = (
    "SELECT COUNT(*), COALESCE(SUM(claimed_at IS NOT NULL), 0), COALESCE(SUM(released_at IS NOT NULL), 0), "
    "COALESCE(SUM(promoted), 0) FROM claim WHERE campaign_id = %s"
)
PER_SECOND = (  # the newest seconds with a win, a claim or a release (epoch seconds: the stored times are UTC)
    "SELECT ts, SUM(what = 'won'), SUM(what = 'claimed'), SUM(what = 'released') FROM ("
    " SELECT TIMESTAMPDIFF(SECOND, '1970-01-01', won_at) ts, 'won' what FROM claim WHERE campaign_id = %s"
    " UNION ALL SELECT TIMESTAMPDIFF(SECOND, '1970-01-01', claimed_at), 'claimed' FROM claim"
    " WHERE campaign_id = %s AND claimed_at IS NOT NULL"
    " UNION ALL SELECT TIMESTAMPDIFF(SECOND, '1970-01-01', released_at), 'released' FROM claim"
    " WHERE campaign_id = %s AND released_at IS NOT NULL"
    ") e GROUP BY ts ORDER BY ts DESC LIMIT %s"
)


def claims_summary(engine: Engine, *, campaign_id: int, seconds: int = 3600) -> dict[str, Any]:
    """The counts, and per second (the newest `seconds` with something, oldest first) the wins, claims, releases."""
    with engine.connect() as conn:
        wins, claimed, released, promoted = conn.exec_driver_sql(SUMMARY, (campaign_id,)).one()
        rows = conn.exec_driver_sql(PER_SECOND, (campaign_id, campaign_id, campaign_id, seconds)).all()
    return {
        "wins": int(wins),
        "claimed": int(claimed),
        "released": int(released),
        "waiting": int(wins) - int(claimed) - int(released),
        "promoted": int(promoted),
        "perSecond": [
            {"ts": int(ts), "won": int(w), "claimed": int(c), "released": int(r)} for ts, w, c, r in reversed(rows)
        ],
    }
