"""Worker heartbeats and the record of replayed dead letters."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "0003"
down_revision = "0002"

TS = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")


def upgrade() -> None:
    op.create_table(
        "worker_heartbeat",
        sa.Column("worker_id", sa.String(100), primary_key=True),
        sa.Column("consumer_group", sa.String(200), nullable=False),
        sa.Column("topic", sa.String(249), nullable=False),
        sa.Column("partitions", sa.String(1000), nullable=False),
        sa.Column("decided_total", sa.BigInteger, nullable=False),
        sa.Column("dead_lettered_total", sa.BigInteger, nullable=False),
        sa.Column("batches_total", sa.BigInteger, nullable=False),
        sa.Column("db_retries_total", sa.BigInteger, nullable=False),
        sa.Column("last_batch_at", TS, nullable=True),
        sa.Column("started_at", TS, nullable=False),
        sa.Column("heartbeat_at", TS, nullable=False),
        sa.Column("state", sa.String(20), nullable=False),
        mysql_engine="InnoDB",
    )
    op.create_table(
        "dead_letter_replay",
        sa.Column("dlq_topic", sa.String(249), primary_key=True),
        sa.Column("dlq_partition", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("dlq_offset", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("replayed_at", TS, nullable=False),
        sa.Column("target_partition", sa.Integer, nullable=True),
        sa.Column("target_offset", sa.BigInteger, nullable=True),
        mysql_engine="InnoDB",
    )


def downgrade() -> None:
    op.drop_table("dead_letter_replay")
    op.drop_table("worker_heartbeat")
