"""Campaigns, participation history and the worker's stored offsets.

Revision ID: 0001
Revises:
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "0001"
down_revision = None

TS = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")


def upgrade() -> None:
    op.create_table(
        "campaign",
        sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("total_stock", sa.Integer, nullable=False),
        sa.Column("current_stock", sa.Integer, nullable=False),
        sa.Column("success_count", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("fail_count", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("duplicate_count", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("starts_at", TS, nullable=True),
        sa.Column("ends_at", TS, nullable=True),
        sa.Column("sold_out_at", TS, nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.CheckConstraint("current_stock >= 0 AND current_stock <= total_stock", name="ck_campaign_stock_range"),
        sa.CheckConstraint("success_count = total_stock - current_stock", name="ck_campaign_winners_match_stock"),
        mysql_engine="InnoDB",
    )
    op.create_table(
        "participation_history",
        sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=True),
        sa.Column("request_id", sa.String(64), nullable=False),
        sa.Column(
            "campaign_id", sa.BigInteger, sa.ForeignKey("campaign.id", name="fk_history_campaign"), nullable=False
        ),
        sa.Column("user_id", sa.BigInteger, nullable=False),
        sa.Column("status", sa.Enum("SUCCESS", "FAIL", "DUPLICATE", name="outcome"), nullable=False),
        sa.Column("channel", sa.Enum("KAFKA", "SYNC", name="channel"), nullable=False),
        sa.Column("kafka_partition", sa.Integer, nullable=True),
        sa.Column("kafka_offset", sa.BigInteger, nullable=True),
        sa.Column("requested_at", TS, nullable=False),
        sa.Column("decided_at", TS, nullable=False),
        sa.Column(
            "participant_user_id",
            sa.BigInteger,
            sa.Computed("CASE WHEN status = 'DUPLICATE' THEN NULL ELSE user_id END", persisted=True),
        ),
        sa.UniqueConstraint("request_id", name="uq_history_request_id"),
        sa.UniqueConstraint("campaign_id", "participant_user_id", name="uq_history_one_attempt_per_user"),
        mysql_engine="InnoDB",
    )
    op.create_index("ix_history_campaign_decided", "participation_history", ["campaign_id", "decided_at"])
    op.create_table(
        "consumer_offset",
        sa.Column("consumer_group", sa.String(200), primary_key=True),
        sa.Column("topic", sa.String(249), primary_key=True),
        sa.Column("partition_id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("next_offset", sa.BigInteger, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        mysql_engine="InnoDB",
    )


def downgrade() -> None:
    op.drop_table("consumer_offset")
    op.drop_table("participation_history")
    op.drop_table("campaign")
