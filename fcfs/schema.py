"""The database schema (SQLAlchemy Core tables); Alembic migrations in `migrations/` create it."""

from __future__ import annotations

import enum

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    Computed,
    Date,
    DateTime,
    Enum,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    false,
)
from sqlalchemy.dialects import mysql

metadata = MetaData()

# Naive UTC timestamps; DATETIME(6) on MySQL/MariaDB so the order of decisions within a second shows.
Timestamp = DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")


class Outcome(enum.StrEnum):
    """The terminal decision for one participation request."""

    SUCCESS = "SUCCESS"
    FAIL = "FAIL"
    DUPLICATE = "DUPLICATE"
    RELEASED = "RELEASED"  # a win its user did not claim in time (0014): its unit went to the next in line


class Channel(enum.StrEnum):
    """How a request reaches its decision: through Kafka and the worker, or synchronously in the API.

    Also a campaign's mode: each campaign takes part through exactly one of them (I7)."""

    KAFKA = "KAFKA"
    SYNC = "SYNC"


class PreQueueOrder(enum.StrEnum):
    """How a campaign's pre-queue is decided at the opening."""

    FIFO = "FIFO"  # in log order
    DRAW = "DRAW"  # in the order of the committed draw (fcfs/draw.py)


def campaign_key(constraint: str) -> Column[int]:
    """`campaign_id` as part of a primary key and a reference to the campaign (per-campaign summaries)."""
    return Column(
        "campaign_id", BigInteger, ForeignKey("campaign.id", name=constraint), primary_key=True, autoincrement=False
    )


campaign = Table(
    "campaign",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("name", String(200), nullable=False),
    Column("total_stock", Integer, nullable=False),
    Column("current_stock", Integer, nullable=False),
    Column("success_count", BigInteger, nullable=False, server_default="0"),
    Column("fail_count", BigInteger, nullable=False, server_default="0"),
    Column("duplicate_count", BigInteger, nullable=False, server_default="0"),
    Column("starts_at", Timestamp, nullable=True),
    Column("ends_at", Timestamp, nullable=True),
    Column("sold_out_at", Timestamp, nullable=True),
    Column("created_at", Timestamp, nullable=False),
    Column("mode", Enum(Channel, native_enum=True, name="campaign_mode"), nullable=False, server_default="KAFKA"),
    # The partition its requests go to, for its whole life (NULL: by key, as before placement existed).
    Column("kafka_partition", Integer, nullable=True),
    Column("weight", Integer, nullable=False, server_default="1"),  # expected share of traffic, for placement
    # An operator's switch (0013): a paused campaign's doors refuse participation; nothing is enqueued.
    Column("paused", Boolean, nullable=False, server_default=false()),
    # Winners who must claim (0014): each win is released unless claimed within this long (0: no claim needed).
    Column("claim_seconds", Integer, nullable=False, server_default="0"),
    Column("released_count", BigInteger, nullable=False, server_default="0"),  # wins released so far
    # A fair opening (0016): the requests of the `pre_queue_seconds` before `starts_at` are held (`pre_queue`) and
    # decided at the opening in log order (FIFO) or by a draw (DRAW) whose seed's SHA-256 is published from creation
    # (`draw_commitment`); the seed is revealed once drawn (fcfs/draw.py).
    Column("pre_queue_seconds", Integer, nullable=False, server_default="0"),
    Column(
        "pre_queue_order",
        Enum(PreQueueOrder, native_enum=True, name="pre_queue_order"),
        nullable=False,
        server_default="FIFO",
    ),
    Column("draw_seed", String(64), nullable=True),  # hex; secret until drawn_at
    Column("draw_commitment", String(64), nullable=True),  # hex SHA-256 of the seed's bytes
    Column("drawn_at", Timestamp, nullable=True),  # when the pre-queue was decided
    Column("pre_queue_digest", String(64), nullable=True),  # the drawn queue's content (fcfs/draw.py)
    Column("pre_queued_count", BigInteger, nullable=False, server_default="0"),  # requests held so far
    Column("draw_winners", BigInteger, nullable=True),  # winners the draw decided
    CheckConstraint("pre_queue_seconds >= 0", name="ck_campaign_pre_queue_seconds"),
    CheckConstraint("claim_seconds >= 0", name="ck_campaign_claim_seconds"),
    CheckConstraint("weight >= 1", name="ck_campaign_weight_positive"),
    CheckConstraint("kafka_partition >= 0", name="ck_campaign_partition_natural"),
    # I1 at the database level: stock never below zero, winners never above the stock.
    CheckConstraint("current_stock >= 0 AND current_stock <= total_stock", name="ck_campaign_stock_range"),
    CheckConstraint("success_count = total_stock - current_stock", name="ck_campaign_winners_match_stock"),
)

participation_history = Table(
    "participation_history",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("request_id", String(64), nullable=False),  # binary, no-pad collation (migration 0006)
    Column("campaign_id", BigInteger, ForeignKey("campaign.id", name="fk_history_campaign"), nullable=False),
    Column("user_id", BigInteger, nullable=False),
    Column("status", Enum(Outcome, native_enum=True, name="outcome"), nullable=False),
    Column("channel", Enum(Channel, native_enum=True, name="channel"), nullable=False),
    Column("kafka_partition", Integer, nullable=True),
    Column("kafka_offset", BigInteger, nullable=True),
    Column("requested_at", Timestamp, nullable=False),
    Column("decided_at", Timestamp, nullable=False),
    # when a FAIL became a SUCCESS: stock added during the event goes to the earliest FAILs first (0013)
    Column("promoted_at", Timestamp, nullable=True),
    # A user's first request in a campaign (SUCCESS or FAIL) sets this; repeats (DUPLICATE) leave it
    # NULL. Unique per campaign, it is I3 as a constraint: one first attempt, so one win, per person.
    Column(
        "participant_user_id",
        BigInteger,
        Computed("CASE WHEN status = 'DUPLICATE' THEN NULL ELSE user_id END", persisted=True),
    ),
    UniqueConstraint("request_id", name="uq_history_request_id"),
    UniqueConstraint("campaign_id", "participant_user_id", name="uq_history_one_attempt_per_user"),
    Index("ix_history_campaign_decided", "campaign_id", "decided_at"),
    Index("ix_history_decided_campaign_status", "decided_at", "campaign_id", "status"),
    Index("ix_history_campaign_log", "campaign_id", "kafka_offset"),  # the decision feed's ranges (0011)
)


claim = Table(
    "claim",
    metadata,
    # One row per win of a campaign that needs claims, written in the transaction that decided or promoted it: the
    # releaser and the look-ups read this small table (at most the stock plus the releases), never the history.
    Column(
        "history_id",
        BigInteger,
        ForeignKey("participation_history.id", name="fk_claim_history"),
        primary_key=True,
        autoincrement=False,
    ),
    Column("campaign_id", BigInteger, ForeignKey("campaign.id", name="fk_claim_campaign"), nullable=False),
    Column("request_id", String(64), nullable=False),  # binary, no-pad collation, as the history's
    Column("user_id", BigInteger, nullable=False),
    Column("won_at", Timestamp, nullable=False),  # decided SUCCESS, or promoted
    Column("deadline", Timestamp, nullable=False),  # won_at + the campaign's claim_seconds
    Column("claimed_at", Timestamp, nullable=True),
    Column("released_at", Timestamp, nullable=True),
    Column("promoted", Boolean, nullable=False, server_default=false()),  # won through a release or added stock
    Column("changed_at", Timestamp, nullable=False),  # the look-ups follow the changes by this
    CheckConstraint("deadline > won_at", name="ck_claim_window"),
    CheckConstraint("claimed_at IS NULL OR released_at IS NULL", name="ck_claim_claimed_or_released"),
    UniqueConstraint("request_id", name="uq_claim_request_id"),
    Index("ix_claim_due", "released_at", "claimed_at", "deadline"),
    Index("ix_claim_campaign_changed", "campaign_id", "changed_at"),
)


pre_queue = Table(
    "pre_queue",
    metadata,
    # The requests held for a campaign's opening (0016), written by the worker with its offsets; decided (a history
    # row each) when the campaign is drawn, in the same transaction that records the draw.
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("campaign_id", BigInteger, ForeignKey("campaign.id", name="fk_pre_queue_campaign"), nullable=False),
    Column("request_id", String(64), nullable=False),  # binary, no-pad collation, as the history's
    Column("user_id", BigInteger, nullable=False),
    Column("kafka_partition", Integer, nullable=False),
    Column("kafka_offset", BigInteger, nullable=False),
    Column("requested_at", Timestamp, nullable=False),
    Column("queued_at", Timestamp, nullable=False),
    UniqueConstraint("request_id", name="uq_pre_queue_request_id"),
    Index("ix_pre_queue_campaign_log", "campaign_id", "kafka_offset"),
)


class SwitchAction(enum.StrEnum):
    """What an operator changed during a campaign (the `campaign_switch` log)."""

    PAUSE = "PAUSE"
    RESUME = "RESUME"
    END = "END"
    MOVE_END = "MOVE_END"
    ADD_STOCK = "ADD_STOCK"
    DRAW = "DRAW"  # the pre-queue decided at the opening (by the worker, not an operator)


campaign_switch = Table(
    "campaign_switch",
    metadata,
    # Every switch of every campaign, in order: who, when, what (0013). The API processes follow it by id to
    # learn within a second of a switch another process made (backend/door/campaign_cache.py).
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("campaign_id", BigInteger, ForeignKey("campaign.id", name="fk_switch_campaign"), nullable=False),
    Column("at", Timestamp, nullable=False),
    Column("action", Enum(SwitchAction, native_enum=True, name="switch_action"), nullable=False),
    Column("actor", String(64), nullable=False),  # the caller's X-Operator, else "admin API"
    Column("address", String(45), nullable=False),  # the caller's address
    Column("ends_at_before", Timestamp, nullable=True),
    Column("ends_at_after", Timestamp, nullable=True),
    Column("stock_added", Integer, nullable=True),  # ADD_STOCK: the units added, and how many of them went at once
    Column("promoted", Integer, nullable=True),  # to the earliest FAILs (the rest wait for new arrivals)
    Index("ix_switch_campaign_at", "campaign_id", "at"),
)

consumer_offset = Table(
    "consumer_offset",
    metadata,
    Column("consumer_group", String(200), primary_key=True),
    Column("topic", String(249), primary_key=True),
    Column("partition_id", Integer, primary_key=True, autoincrement=False),
    Column("next_offset", BigInteger, nullable=False),
    Column("updated_at", Timestamp, nullable=False),
)


class JobTrigger(enum.StrEnum):
    MANUAL = "MANUAL"
    SCHEDULED = "SCHEDULED"


class JobStatus(enum.StrEnum):
    STARTED = "STARTED"
    COMPLETED = "COMPLETED"
    PARTIAL = "PARTIAL"  # some campaigns failed; the others are committed
    FAILED = "FAILED"


campaign_stats = Table(
    "campaign_stats",
    metadata,
    Column("stats_date", Date, primary_key=True),
    campaign_key("fk_stats_campaign"),
    Column("success_count", BigInteger, nullable=False),
    Column("fail_count", BigInteger, nullable=False),
    Column("duplicate_count", BigInteger, nullable=False),
    Column("total_count", BigInteger, nullable=False),
    Column("unique_users", BigInteger, nullable=False),
    Column("first_request_at", Timestamp, nullable=True),
    Column("last_request_at", Timestamp, nullable=True),
    Column("sell_out_seconds", Float(precision=53), nullable=True),
    Index("ix_stats_campaign_date", "campaign_id", "stats_date"),
)

batch_job_execution = Table(
    "batch_job_execution",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("job_name", String(64), nullable=False),
    Column("target_date", Date, nullable=False),
    Column("trigger_type", Enum(JobTrigger, native_enum=True, name="job_trigger"), nullable=False),
    Column("status", Enum(JobStatus, native_enum=True, name="job_status"), nullable=False),
    Column("started_at", Timestamp, nullable=False),
    Column("ended_at", Timestamp, nullable=True),
    Column("campaigns_total", Integer, nullable=False, server_default="0"),
    Column("campaigns_failed", Integer, nullable=False, server_default="0"),
    Column("campaign_results", Text, nullable=True),
    Column("error", Text, nullable=True),
    Index("ix_job_name_date", "job_name", "target_date"),
    Index("ix_job_started", "started_at"),
)

worker_heartbeat = Table(
    "worker_heartbeat",
    metadata,
    Column("worker_id", String(100), primary_key=True),
    Column("consumer_group", String(200), nullable=False),
    Column("topic", String(249), nullable=False),
    Column("partitions", String(1000), nullable=False),
    Column("decided_total", BigInteger, nullable=False),
    Column("dead_lettered_total", BigInteger, nullable=False),
    Column("batches_total", BigInteger, nullable=False),
    Column("db_retries_total", BigInteger, nullable=False),
    Column("last_batch_at", Timestamp, nullable=True),
    Column("started_at", Timestamp, nullable=False),
    Column("heartbeat_at", Timestamp, nullable=False),
    Column("state", String(20), nullable=False),
)

dead_letter_replay = Table(
    "dead_letter_replay",
    metadata,
    Column("dlq_topic", String(249), primary_key=True),
    Column("dlq_partition", Integer, primary_key=True, autoincrement=False),
    Column("dlq_offset", BigInteger, primary_key=True, autoincrement=False),
    Column("replayed_at", Timestamp, nullable=False),
    Column("target_partition", Integer, nullable=True),
    Column("target_offset", BigInteger, nullable=True),
)

# Decisions per campaign and second (of decided_at), kept in the same transaction as the history:
# the live dashboard's curves in O(seconds), whatever the size of the history.
campaign_second = Table(
    "campaign_second",
    metadata,
    campaign_key("fk_second_campaign"),
    Column("second", DateTime, primary_key=True),
    Column("success_count", Integer, nullable=False),
    Column("fail_count", Integer, nullable=False),
    Column("duplicate_count", Integer, nullable=False),
    Column("stock_after", Integer, nullable=False),
    Index("ix_second_time", "second"),
)

# What the door answered per campaign and second (every API process adds its counts once a second).
campaign_intake_second = Table(
    "campaign_intake_second",
    metadata,
    Column("campaign_id", BigInteger, primary_key=True, autoincrement=False),
    Column("second", DateTime, primary_key=True),
    Column("accepted", BigInteger, nullable=False, server_default="0"),
    Column("unavailable", BigInteger, nullable=False, server_default="0"),
    Column("limited", BigInteger, nullable=False, server_default="0"),
    Index("ix_intake_second_time", "second"),
)

# Seconds in which an API process found a dependency ("DATABASE") unavailable, written once it is back.
dependency_outage_second = Table(
    "dependency_outage_second",
    metadata,
    Column("dependency", String(16), primary_key=True),
    Column("second", DateTime, primary_key=True),
)

# Crowd runs (`python -m crowd`): a storm through the real door, with what the crowd measured.
crowd_run = Table(
    "crowd_run",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("campaign_id", BigInteger, nullable=False),
    Column("target_url", String(255), nullable=False),
    Column("users", Integer, nullable=False),
    Column("seconds", Float, nullable=False),
    Column("repeat_share", Float, nullable=False),
    Column("shape", String(16), nullable=False),
    Column("connections", Integer, nullable=False),
    Column("planned", Integer, nullable=False),
    Column("status", String(16), nullable=False),
    Column("stop_requested", Boolean, nullable=False, server_default=false()),
    Column("sent", BigInteger, nullable=False, server_default="0"),
    Column("accepted", BigInteger, nullable=False, server_default="0"),
    Column("refused", BigInteger, nullable=False, server_default="0"),
    Column("failed", BigInteger, nullable=False, server_default="0"),
    Column("answers", Text, nullable=False),  # JSON: {"202": n, "429 RATE_LIMITED": n, "no answer": n, …}
    Column("p50_ms", Float, nullable=True),
    Column("p95_ms", Float, nullable=True),
    Column("p99_ms", Float, nullable=True),
    Column("max_ms", Float, nullable=True),
    Column("behind_s", Float, nullable=False, server_default="0"),
    # the share of users who wait for their outcome after the 202 (the held look-up), what they learned
    # (JSON: {"SUCCESS": n, "FAIL": n, "no outcome": n, …}) and the time from the click to it (0012)
    Column("wait_share", Float, nullable=False, server_default="0"),
    Column("outcomes", Text, nullable=True),
    Column("outcome_p50_ms", Float, nullable=True),
    Column("outcome_p95_ms", Float, nullable=True),
    Column("outcome_p99_ms", Float, nullable=True),
    Column("outcome_max_ms", Float, nullable=True),
    Column("error", Text, nullable=True),
    Column("host", String(255), nullable=True),
    Column("pid", Integer, nullable=True),
    Column("created_at", Timestamp, nullable=False),
    Column("started_at", Timestamp, nullable=True),
    Column("heartbeat_at", Timestamp, nullable=False),
    Column("ended_at", Timestamp, nullable=True),
    Index("ix_crowd_run_campaign", "campaign_id"),
)

crowd_run_second = Table(
    "crowd_run_second",
    metadata,
    Column("run_id", BigInteger, primary_key=True, autoincrement=False),
    Column("second", DateTime, primary_key=True),
    Column("sent", Integer, nullable=False),
    Column("accepted", Integer, nullable=False),
    Column("refused", Integer, nullable=False),
    Column("failed", Integer, nullable=False),
    Column("p50_ms", Float, nullable=True),
    Column("p95_ms", Float, nullable=True),
    Column("p99_ms", Float, nullable=True),
)

consumer_lag_sample = Table(
    "consumer_lag_sample",
    metadata,
    Column("topic", String(249), primary_key=True),
    Column("partition_id", Integer, primary_key=True, autoincrement=False),
    Column("sampled_at", DateTime, primary_key=True),
    Column("end_offset", BigInteger, nullable=False),
    Column("committed_offset", BigInteger, nullable=False),
    Index("ix_lag_sample_time", "sampled_at"),
)

alert = Table(
    "alert",
    metadata,
    # Incidents and events the alerter saw (0015), and to which webhooks each was delivered (fcfs/alerts.py).
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("incident_key", String(255), nullable=False),  # one open incident per key at a time
    Column("kind", String(32), nullable=False),
    Column("subject", String(200), nullable=False),
    Column("text", String(500), nullable=False),
    Column("opened_at", Timestamp, nullable=False),
    Column("resolved_at", Timestamp, nullable=True),  # an event (sold out, a crowd's end): at once
    Column("fired_to", String(1000), nullable=False, server_default=""),  # the URLs (digests) that have it
    Column("resolved_to", String(1000), nullable=False, server_default=""),
    Column("attempts", Integer, nullable=False, server_default="0"),  # failed deliveries in a row
    Column("next_attempt_at", Timestamp, nullable=False),
    Column("last_error", String(300), nullable=True),
    Column("done", Boolean, nullable=False, server_default=false()),  # delivered everywhere, resolved
    Index("ix_alert_key", "incident_key"),
    Index("ix_alert_due", "done", "next_attempt_at"),
    Index("ix_alert_open", "resolved_at"),
)
