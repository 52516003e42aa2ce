"""Switches during the event: a campaign may be paused (its doors refuse, nothing is enqueued), and every switch —
pause, resume, end now, move the end, add stock — is logged with who made it, when, and what it changed. The API
processes follow the log by id to learn of a switch made through another process. Stock added goes to the
earliest FAILs first: a history row records when it was promoted."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "0013"
down_revision = "0012"

ACTIONS = ("PAUSE", "RESUME", "END", "MOVE_END", "ADD_STOCK")
Timestamp = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")


def upgrade() -> None:
    op.add_column("campaign", sa.Column("paused", sa.Boolean, nullable=False, server_default=sa.false()))
    op.create_table(
        "campaign_switch",
        sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=True),
        sa.Column(
            "campaign_id",
            sa.BigInteger,
            sa.ForeignKey("campaign.id", name="fk_switch_campaign"),
            nullable=False,
        ),
        sa.Column("at", Timestamp, nullable=False),
        sa.Column("action", sa.Enum(*ACTIONS, native_enum=True, name="switch_action"), nullable=False),
        sa.Column("actor", sa.String(64), nullable=False),
        sa.Column("address", sa.String(45), nullable=False),
        sa.Column("ends_at_before", Timestamp, nullable=True),
        sa.Column("ends_at_after", Timestamp, nullable=True),
        sa.Column("stock_added", sa.Integer, nullable=True),
        sa.Column("promoted", sa.Integer, nullable=True),
    )
    op.create_index("ix_switch_campaign_at", "campaign_switch", ["campaign_id", "at"])
    op.add_column("participation_history", sa.Column("promoted_at", Timestamp, nullable=True))


def downgrade() -> None:
    op.drop_column("participation_history", "promoted_at")
    op.drop_table("campaign_switch")
    op.drop_column("campaign", "paused")
