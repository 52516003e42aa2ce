"""Campaigns placed on partitions: `campaign.kafka_partition` (chosen at creation, never changed) and
`campaign.weight` (the operator's estimate of its share of the traffic, which placement balances).

Campaigns created before keep a NULL partition: their requests go by key (murmur2 of the campaign id),
as before, until `python -m fcfs.provision --partitions N` pins them to that partition before growing
the topic.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"


def upgrade() -> None:
    op.add_column("campaign", sa.Column("kafka_partition", sa.Integer, nullable=True))
    op.add_column("campaign", sa.Column("weight", sa.Integer, nullable=False, server_default="1"))
    op.create_check_constraint("ck_campaign_weight_positive", "campaign", "weight >= 1")
    op.create_check_constraint("ck_campaign_partition_natural", "campaign", "kafka_partition >= 0")


def downgrade() -> None:
    op.drop_constraint("ck_campaign_partition_natural", "campaign", type_="check")
    op.drop_constraint("ck_campaign_weight_positive", "campaign", type_="check")
    op.drop_column("campaign", "weight")
    op.drop_column("campaign", "kafka_partition")
