"""Winners who must claim: a campaign may give each win `claim_seconds` to be claimed; a win not claimed in time
is RELEASED and its unit goes to the campaign's earliest FAIL (promoted, with its own window), or back to the
stock when there is none. One `claim` row per win (few: at most the stock plus the releases), written in the
transaction that decides or promotes it, so the releaser and the look-ups read a small table, not the history.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "0014"
down_revision = "0013"

Timestamp = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")


def binary_collation() -> str:
    bind = op.get_bind()
    return "utf8mb4_nopad_bin" if getattr(bind.dialect, "is_mariadb", False) else "utf8mb4_0900_bin"


def upgrade() -> None:
    op.add_column("campaign", sa.Column("claim_seconds", sa.Integer, nullable=False, server_default="0"))
    op.add_column("campaign", sa.Column("released_count", sa.BigInteger, nullable=False, server_default="0"))
    op.create_check_constraint("ck_campaign_claim_seconds", "campaign", "claim_seconds >= 0")
    # appended at the end of the ENUM: no table copy
    op.execute("ALTER TABLE participation_history MODIFY status ENUM('SUCCESS','FAIL','DUPLICATE','RELEASED') NOT NULL")
    op.create_table(
        "claim",
        sa.Column(
            "history_id",
            sa.BigInteger,
            sa.ForeignKey("participation_history.id", name="fk_claim_history"),
            primary_key=True,
            autoincrement=False,
        ),
        sa.Column("campaign_id", sa.BigInteger, sa.ForeignKey("campaign.id", name="fk_claim_campaign"), nullable=False),
        sa.Column("request_id", sa.String(64), nullable=False),
        sa.Column("user_id", sa.BigInteger, nullable=False),
        sa.Column("won_at", Timestamp, nullable=False),
        sa.Column("deadline", Timestamp, nullable=False),
        sa.Column("claimed_at", Timestamp, nullable=True),
        sa.Column("released_at", Timestamp, nullable=True),
        sa.Column("promoted", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("changed_at", Timestamp, nullable=False),
        sa.CheckConstraint("deadline > won_at", name="ck_claim_window"),
        sa.CheckConstraint("claimed_at IS NULL OR released_at IS NULL", name="ck_claim_claimed_or_released"),
        sa.UniqueConstraint("request_id", name="uq_claim_request_id"),
    )
    op.execute(
        f"ALTER TABLE claim MODIFY request_id VARCHAR(64) CHARACTER SET utf8mb4 COLLATE {binary_collation()} NOT NULL"
    )
    op.create_index("ix_claim_due", "claim", ["released_at", "claimed_at", "deadline"])
    op.create_index("ix_claim_campaign_changed", "claim", ["campaign_id", "changed_at"])


def downgrade() -> None:
    op.drop_table("claim")
    op.execute("UPDATE participation_history SET status = 'FAIL' WHERE status = 'RELEASED'")  # (no unit held)
    op.execute("ALTER TABLE participation_history MODIFY status ENUM('SUCCESS','FAIL','DUPLICATE') NOT NULL")
    op.drop_constraint("ck_campaign_claim_seconds", "campaign", type_="check")
    op.drop_column("campaign", "released_count")
    op.drop_column("campaign", "claim_seconds")
