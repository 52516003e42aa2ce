"""Each campaign takes part through one door: KAFKA (the default) or SYNC, fixed at creation."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"

MODE = sa.Enum("KAFKA", "SYNC", name="campaign_mode")


def upgrade() -> None:
    op.add_column("campaign", sa.Column("mode", MODE, nullable=False, server_default="KAFKA"))


def downgrade() -> None:
    op.drop_column("campaign", "mode")
