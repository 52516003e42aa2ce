"""What the door answered, per campaign and second: accepted (202), unavailable (503), limited (429).

Written by every API process once a second (counts add up), read by the Live page next to the decisions
per second, so a reload loses nothing and a broker outage shows as refusals at the door.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"


def upgrade() -> None:
    op.create_table(
        "campaign_intake_second",
        sa.Column("campaign_id", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("second", sa.DateTime, primary_key=True),
        sa.Column("accepted", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("unavailable", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("limited", sa.BigInteger, nullable=False, server_default="0"),
    )
    op.create_index("ix_intake_second_time", "campaign_intake_second", ["second"])


def downgrade() -> None:
    op.drop_table("campaign_intake_second")
