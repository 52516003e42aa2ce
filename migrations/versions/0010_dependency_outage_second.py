"""Seconds in which an API process found a dependency unavailable (the database), kept so the Live page
can mark an outage on its time axis after the fact: written by the process once the database is back.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"


def upgrade() -> None:
    op.create_table(
        "dependency_outage_second",
        sa.Column("dependency", sa.String(16), primary_key=True),
        sa.Column("second", sa.DateTime, primary_key=True),
    )


def downgrade() -> None:
    op.drop_table("dependency_outage_second")
