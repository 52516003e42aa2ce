"""Alerts: the incidents and events the alerter saw (a partition stalled, a worker lost, dead letters growing,
the door answering 503, the database unavailable, a campaign sold out, a crowd finished), each delivered once
to every webhook, its firing and its resolution."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "0015"
down_revision = "0014"

Timestamp = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")


def upgrade() -> None:
    op.create_table(
        "alert",
        sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=True),
        sa.Column("incident_key", sa.String(255), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("subject", sa.String(200), nullable=False),
        sa.Column("text", sa.String(500), nullable=False),
        sa.Column("opened_at", Timestamp, nullable=False),
        sa.Column("resolved_at", Timestamp, nullable=True),
        sa.Column("fired_to", sa.String(1000), nullable=False, server_default=""),
        sa.Column("resolved_to", sa.String(1000), nullable=False, server_default=""),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("next_attempt_at", Timestamp, nullable=False),
        sa.Column("last_error", sa.String(300), nullable=True),
        sa.Column("done", sa.Boolean, nullable=False, server_default=sa.false()),
    )
    op.create_index("ix_alert_key", "alert", ["incident_key"])
    op.create_index("ix_alert_due", "alert", ["done", "next_attempt_at"])
    op.create_index("ix_alert_open", "alert", ["resolved_at"])


def downgrade() -> None:
    op.drop_table("alert")
