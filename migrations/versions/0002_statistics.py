"""Daily statistics, batch job records, and an index for raw statistics queries."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "0002"
down_revision = "0001"

TS = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")


def upgrade() -> None:
    op.create_table(
        "campaign_stats",
        sa.Column("stats_date", sa.Date, primary_key=True),
        sa.Column(
            "campaign_id",
            sa.BigInteger,
            sa.ForeignKey("campaign.id", name="fk_stats_campaign"),
            primary_key=True,
            autoincrement=False,
        ),
        sa.Column("success_count", sa.BigInteger, nullable=False),
        sa.Column("fail_count", sa.BigInteger, nullable=False),
        sa.Column("duplicate_count", sa.BigInteger, nullable=False),
        sa.Column("total_count", sa.BigInteger, nullable=False),
        sa.Column("unique_users", sa.BigInteger, nullable=False),
        sa.Column("first_request_at", TS, nullable=True),
        sa.Column("last_request_at", TS, nullable=True),
        sa.Column("sell_out_seconds", sa.Float(precision=53), nullable=True),
        mysql_engine="InnoDB",
    )
    op.create_index("ix_stats_campaign_date", "campaign_stats", ["campaign_id", "stats_date"])
    op.create_table(
        "batch_job_execution",
        sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=True),
        sa.Column("job_name", sa.String(64), nullable=False),
        sa.Column("target_date", sa.Date, nullable=False),
        sa.Column("trigger_type", sa.Enum("MANUAL", "SCHEDULED", name="job_trigger"), nullable=False),
        sa.Column("status", sa.Enum("STARTED", "COMPLETED", "PARTIAL", "FAILED", name="job_status"), nullable=False),
        sa.Column("started_at", TS, nullable=False),
        sa.Column("ended_at", TS, nullable=True),
        sa.Column("campaigns_total", sa.Integer, nullable=False, server_default="0"),
        sa.Column("campaigns_failed", sa.Integer, nullable=False, server_default="0"),
        sa.Column("campaign_results", sa.Text, nullable=True),
        sa.Column("error", sa.Text, nullable=True),
        mysql_engine="InnoDB",
    )
    op.create_index("ix_job_name_date", "batch_job_execution", ["job_name", "target_date"])
    op.create_index("ix_job_started", "batch_job_execution", ["started_at"])
    # Raw statistics scan one day of history: a covering index makes that an index range scan.
    op.create_index(
        "ix_history_decided_campaign_status", "participation_history", ["decided_at", "campaign_id", "status"]
    )


def downgrade() -> None:
    op.drop_index("ix_history_decided_campaign_status", table_name="participation_history")
    op.drop_table("batch_job_execution")
    op.drop_table("campaign_stats")
