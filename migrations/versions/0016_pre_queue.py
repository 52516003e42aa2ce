"""A fair opening: a campaign may hold the requests of the `pre_queue_seconds` before its start (the pre-queue)
and decide them at the opening, in log order (FIFO) or in the order of a draw (DRAW) whose seed is committed at
creation (`draw_commitment`, the SHA-256 of `draw_seed`) and revealed once drawn. The held requests wait in
`pre_queue`, written by the worker in the transaction that stores its offsets (nothing held is lost), and are
decided, with history rows as any request, in the transaction that draws (fcfs/draw.py).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "0016"
down_revision = "0015"

Timestamp = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")


def binary_collation() -> str:
    bind = op.get_bind()
    return "utf8mb4_nopad_bin" if getattr(bind.dialect, "is_mariadb", False) else "utf8mb4_0900_bin"


def upgrade() -> None:
    op.add_column("campaign", sa.Column("pre_queue_seconds", sa.Integer, nullable=False, server_default="0"))
    op.add_column(
        "campaign",
        sa.Column(
            "pre_queue_order",
            sa.Enum("FIFO", "DRAW", native_enum=True, name="pre_queue_order"),
            nullable=False,
            server_default="FIFO",
        ),
    )
    op.add_column("campaign", sa.Column("draw_seed", sa.String(64), nullable=True))
    op.add_column("campaign", sa.Column("draw_commitment", sa.String(64), nullable=True))
    op.add_column("campaign", sa.Column("drawn_at", Timestamp, nullable=True))
    op.add_column("campaign", sa.Column("pre_queue_digest", sa.String(64), nullable=True))
    op.add_column("campaign", sa.Column("pre_queued_count", sa.BigInteger, nullable=False, server_default="0"))
    op.add_column("campaign", sa.Column("draw_winners", sa.BigInteger, nullable=True))
    op.create_check_constraint("ck_campaign_pre_queue_seconds", "campaign", "pre_queue_seconds >= 0")
    op.create_table(
        "pre_queue",
        sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=True),
        sa.Column(
            "campaign_id", sa.BigInteger, sa.ForeignKey("campaign.id", name="fk_pre_queue_campaign"), nullable=False
        ),
        sa.Column("request_id", sa.String(64), nullable=False),
        sa.Column("user_id", sa.BigInteger, nullable=False),
        sa.Column("kafka_partition", sa.Integer, nullable=False),
        sa.Column("kafka_offset", sa.BigInteger, nullable=False),
        sa.Column("requested_at", Timestamp, nullable=False),
        sa.Column("queued_at", Timestamp, nullable=False),
        sa.UniqueConstraint("request_id", name="uq_pre_queue_request_id"),
    )
    op.execute(
        f"ALTER TABLE pre_queue MODIFY request_id VARCHAR(64) CHARACTER SET utf8mb4 COLLATE {binary_collation()} "
        "NOT NULL"
    )
    op.create_index("ix_pre_queue_campaign_log", "pre_queue", ["campaign_id", "kafka_offset"])
    # appended at the end of the ENUM: no table copy
    op.execute(
        "ALTER TABLE campaign_switch MODIFY action ENUM('PAUSE','RESUME','END','MOVE_END','ADD_STOCK','DRAW') NOT NULL"
    )


def downgrade() -> None:
    op.execute("DELETE FROM campaign_switch WHERE action = 'DRAW'")
    op.execute("ALTER TABLE campaign_switch MODIFY action ENUM('PAUSE','RESUME','END','MOVE_END','ADD_STOCK') NOT NULL")
    op.drop_table("pre_queue")
    op.drop_constraint("ck_campaign_pre_queue_seconds", "campaign", type_="check")
    for column in (
        "draw_winners",
        "pre_queued_count",
        "pre_queue_digest",
        "drawn_at",
        "draw_commitment",
        "draw_seed",
        "pre_queue_order",
        "pre_queue_seconds",
    ):
        op.drop_column("campaign", column)
