"""The history rows in log order (`kafka_partition`, `kafka_offset`): the API processes' decision feed reads
each partition's newly decided rows as one range of this index (backend/door/decisions.py).
"""

from __future__ import annotations

from alembic import op

revision = "0011"
down_revision = "0010"


def upgrade() -> None:
    op.create_index("ix_history_log_place", "participation_history", ["kafka_partition", "kafka_offset"])


def downgrade() -> None:
    op.drop_index("ix_history_log_place", table_name="participation_history")
