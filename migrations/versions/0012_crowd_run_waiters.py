"""Crowd runs whose users wait for their outcome: the share that waits (the held look-up), what they learned
and how long it took from the click."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"


def upgrade() -> None:
    op.add_column("crowd_run", sa.Column("wait_share", sa.Float, nullable=False, server_default="0"))
    op.add_column("crowd_run", sa.Column("outcomes", sa.Text, nullable=True))
    for name in ("outcome_p50_ms", "outcome_p95_ms", "outcome_p99_ms", "outcome_max_ms"):
        op.add_column("crowd_run", sa.Column(name, sa.Float, nullable=True))


def downgrade() -> None:
    for name in ("outcomes", "wait_share", "outcome_p50_ms", "outcome_p95_ms", "outcome_p99_ms", "outcome_max_ms"):
        op.drop_column("crowd_run", name)
