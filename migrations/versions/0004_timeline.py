"""Per-second decision counts per campaign, and consumer-lag samples, for the live dashboard."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"


def upgrade() -> None:
    op.create_table(
        "campaign_second",
        sa.Column(
            "campaign_id",
            sa.BigInteger,
            sa.ForeignKey("campaign.id", name="fk_second_campaign"),
            primary_key=True,
            autoincrement=False,
        ),
        sa.Column("second", sa.DateTime, primary_key=True),
        sa.Column("success_count", sa.Integer, nullable=False),
        sa.Column("fail_count", sa.Integer, nullable=False),
        sa.Column("duplicate_count", sa.Integer, nullable=False),
        sa.Column("stock_after", sa.Integer, nullable=False),
        mysql_engine="InnoDB",
    )
    op.create_index("ix_second_time", "campaign_second", ["second"])
    op.create_table(
        "consumer_lag_sample",
        sa.Column("topic", sa.String(249), primary_key=True),
        sa.Column("partition_id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("sampled_at", sa.DateTime, primary_key=True),
        sa.Column("end_offset", sa.BigInteger, nullable=False),
        sa.Column("committed_offset", sa.BigInteger, nullable=False),
        mysql_engine="InnoDB",
    )
    op.create_index("ix_lag_sample_time", "consumer_lag_sample", ["sampled_at"])


def downgrade() -> None:
    op.drop_table("consumer_lag_sample")
    op.drop_table("campaign_second")
