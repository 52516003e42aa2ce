"""A campaign's history rows in log order (`campaign_id`, `kafka_offset`): the API processes' decision feed
reads a followed campaign's newly decided rows as one range of this index (backend/door/decisions.py).
"""

from __future__ import annotations

from alembic import op

revision = "0011"
down_revision = "0010"


def upgrade() -> None:
    op.create_index("ix_history_campaign_log", "participation_history", ["campaign_id", "kafka_offset"])


def downgrade() -> None:
    op.drop_index("ix_history_campaign_log", table_name="participation_history")
