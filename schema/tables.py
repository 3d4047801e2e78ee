"""Table metadata (SQLAlchemy Core), portable between PostgreSQL and SQLite.

The contract tables (``earned_badges``, ``notifications``, ``tier_assignments``,
``badge_definitions``) are read by other systems and keep their column names.
All other tables are internal to the worker.

The migrations in ``schema/migrations`` are the source of truth for the
database; this module mirrors them for queries (a test checks they agree).
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    Uuid,
    false,
    true,
)
from sqlalchemy.dialects.postgresql import JSONB

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

JsonType = JSON().with_variant(JSONB(), "postgresql")
Timestamp = DateTime(timezone=True)

organisations = Table(
    "organisations",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("name", String(200), nullable=False),
    Column("language", String(2), nullable=False, server_default="nb"),
    Column("updated_at", Timestamp, nullable=False),
)

badge_definitions = Table(
    "badge_definitions",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("organisation_id", Uuid, nullable=False),
    Column("code", String(100), nullable=False),
    Column("name", String(200), nullable=False),
    Column("description", Text, nullable=False, server_default=""),
    Column("criteria", JsonType, nullable=False),
    Column("enabled", Boolean, nullable=False, server_default=true()),
    Column("revocable", Boolean, nullable=False, server_default=false()),
    Column("updated_at", Timestamp, nullable=False),
    UniqueConstraint("organisation_id", "code"),
)

earned_badges = Table(
    "earned_badges",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("badge_definition_id", Uuid, ForeignKey("badge_definitions.id"), nullable=False),
    Column("peer_mentor_id", Uuid, nullable=False),
    Column("organisation_id", Uuid, nullable=False),
    Column("earned_at", Timestamp, nullable=False),
    # evaluation | manual | backfill: how the award came about (internal column).
    Column("award_source", String(20), nullable=False, server_default="evaluation"),
    UniqueConstraint("badge_definition_id", "peer_mentor_id"),
    Index(None, "organisation_id", "peer_mentor_id", "earned_at", "id"),
)

#: Every removal of an earned badge (revocation, deduplication) and every
#: manual award leaves a row here: no award disappears without a trace.
badge_audit = Table(
    "badge_audit",
    metadata,
    Column(
        "id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    ),
    Column("action", String(20), nullable=False),  # revoked | deduplicated | manual_award
    Column("earned_badge_id", Uuid, nullable=False),
    Column("badge_definition_id", Uuid, nullable=False),
    Column("peer_mentor_id", Uuid, nullable=False),
    Column("organisation_id", Uuid, nullable=False),
    Column("earned_at", Timestamp, nullable=False),
    Column("reason", Text, nullable=False),
    Column("actor", String(200), nullable=False),
    Column("recorded_at", Timestamp, nullable=False),
)

activity_ledger = Table(
    "activity_ledger",
    metadata,
    Column("activity_id", Uuid, primary_key=True),
    Column("organisation_id", Uuid, nullable=False),
    Column("peer_mentor_id", Uuid, nullable=False),
    Column("activity_type", String(64)),
    Column("activity_date", Date),
    Column("course_id", String(128)),
    Column("occurred_at", Timestamp, nullable=False),
    # Tie-breaker for equal occurred_at, so the winner never depends on arrival order.
    Column("last_event_id", Uuid, nullable=False),
    # A deleted activity stays as a tombstone so a stale save cannot revive it.
    Column("deleted", Boolean, nullable=False, server_default=false()),
    Column("updated_at", Timestamp, nullable=False),
    Index(None, "peer_mentor_id", "activity_date", "activity_type"),
)

processed_events = Table(
    "processed_events",
    metadata,
    Column("event_id", Uuid, primary_key=True),
    Column("activity_id", Uuid, nullable=False),
    Column("processed_at", Timestamp, nullable=False),
)

#: One row per mentor: membership, and when the mentor's stats last changed
#: (tier re-evaluation only looks at mentors changed since its last run).
mentors = Table(
    "mentors",
    metadata,
    Column("peer_mentor_id", Uuid, primary_key=True),
    Column("organisation_id", Uuid, nullable=False),
    Column("stats_changed_at", Timestamp, nullable=False),
    Index(None, "organisation_id", "stats_changed_at"),
)

#: The incremental snapshot: lifetime live activity count per mentor and type.
mentor_activity_counts = Table(
    "mentor_activity_counts",
    metadata,
    Column("peer_mentor_id", Uuid, primary_key=True),
    Column("activity_type", String(64), primary_key=True),
    Column("organisation_id", Uuid, nullable=False),
    Column("activity_count", Integer, nullable=False),
)

#: Live activity count per mentor, local date and type: period and streak queries.
daily_activity_counts = Table(
    "daily_activity_counts",
    metadata,
    Column("peer_mentor_id", Uuid, primary_key=True),
    Column("activity_date", Date, primary_key=True),
    Column("activity_type", String(64), primary_key=True),
    Column("organisation_id", Uuid, nullable=False),
    Column("activity_count", Integer, nullable=False),
)

#: Live activity count per mentor, period (ISO week / month) and type: streaks
#: read a few hundred period rows here instead of scanning daily history.
period_activity_counts = Table(
    "period_activity_counts",
    metadata,
    Column("peer_mentor_id", Uuid, primary_key=True),
    Column("period", String(5), primary_key=True),  # week | month
    Column("period_start", Date, primary_key=True),
    Column("activity_type", String(64), primary_key=True),
    Column("organisation_id", Uuid, nullable=False),
    Column("activity_count", Integer, nullable=False),
)

#: Courses completed, counted by live training_completed activities.
completed_courses = Table(
    "completed_courses",
    metadata,
    Column("peer_mentor_id", Uuid, primary_key=True),
    Column("course_id", String(128), primary_key=True),
    Column("organisation_id", Uuid, nullable=False),
    Column("activity_count", Integer, nullable=False),
)

recognition_tiers = Table(
    "recognition_tiers",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("organisation_id", Uuid, nullable=False),
    Column("level", Integer, nullable=False),  # bronze=1 silver=2 gold=3 platinum=4
    Column("min_assignments", Integer, nullable=False),
    Column("min_streak", Integer, nullable=False),
    Column("activity_types", JsonType, nullable=False),
    Column("updated_at", Timestamp, nullable=False),
    UniqueConstraint("organisation_id", "level"),
)

award_periods = Table(
    "award_periods",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("organisation_id", Uuid, nullable=False),
    Column("name", String(200), nullable=False),
    Column("start_date", Date, nullable=False),
    Column("end_date", Date, nullable=False),  # inclusive
    Column("is_active", Boolean, nullable=False, server_default=true()),
    Column("updated_at", Timestamp, nullable=False),
    UniqueConstraint("organisation_id", "name"),
)

tier_assignments = Table(
    "tier_assignments",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("peer_mentor_id", Uuid, nullable=False),
    Column("organisation_id", Uuid, nullable=False),
    Column("award_period_id", Uuid, ForeignKey("award_periods.id"), nullable=False),
    Column("tier", Integer, nullable=False),
    Column("assigned_at", Timestamp, nullable=False),
    UniqueConstraint("peer_mentor_id", "award_period_id"),
)

#: Notifications to deliver, written in the same transaction as what caused
#: them; one row per channel, so each channel has its own state and retries.
notification_outbox = Table(
    "notification_outbox",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("dedup_key", String(200), nullable=False),  # e.g. badge_earned:<earned id>
    Column("channel", String(10), nullable=False),  # in_app | push
    Column("kind", String(40), nullable=False),  # badge_earned | tier_promoted
    Column("peer_mentor_id", Uuid, nullable=False),
    Column("organisation_id", Uuid, nullable=False),
    Column("payload", JsonType, nullable=False),
    # pending | sent | failed (will retry) | dead | skipped
    Column("state", String(10), nullable=False, server_default="pending"),
    Column("backfill", Boolean, nullable=False, server_default=false()),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("last_error", Text),
    Column("created_at", Timestamp, nullable=False),
    Column("dispatched_at", Timestamp),  # last time a delivery task was enqueued
    Column("updated_at", Timestamp, nullable=False),
    Column("delivered_at", Timestamp),
    # Push delivery lease: the task sending this row now, and until when its
    # claim holds (a crashed sender's claim simply runs out).
    Column("claimed_by", Uuid),
    Column("claimed_until", Timestamp),
    UniqueConstraint("dedup_key", "channel"),
    Index(None, "state", "dispatched_at"),
)

notifications = Table(
    "notifications",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("peer_mentor_id", Uuid, nullable=False),
    Column("organisation_id", Uuid, nullable=False),
    Column("kind", String(40), nullable=False),
    Column("payload", JsonType, nullable=False),
    Column("created_at", Timestamp, nullable=False),
    Column("read_at", Timestamp),
    # The outbox row that produced it: a redelivered task inserts nothing twice.
    Column("outbox_id", Uuid, unique=True),
    Index(None, "peer_mentor_id", "created_at"),
)

quarantined_events = Table(
    "quarantined_events",
    metadata,
    Column(
        "id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    ),
    Column("event_id", String(100)),
    Column("task_id", String(200)),
    Column("raw_payload", Text, nullable=False),
    Column("reason", Text, nullable=False),
    Column("received_at", Timestamp, nullable=False),
    # Set when ``badges quarantine replay`` fed the event through ingestion successfully.
    Column("replayed_at", Timestamp),
)

#: The last successful run of each periodic job (exported by the web ``/metrics``).
periodic_job_runs = Table(
    "periodic_job_runs",
    metadata,
    Column("job", String(64), primary_key=True),
    Column("last_success_at", Timestamp, nullable=False),
    Column("last_duration_s", Float, nullable=False),
)

#: One row per award period: what the last tier re-evaluation of it saw.  The
#: next run re-evaluates only mentors whose ``stats_changed_at`` is newer than
#: ``evaluated_at`` (minus a safety overlap), unless ``config_fingerprint``
#: (period dates + tier thresholds) changed, in which case it evaluates everyone.
tier_evaluation_runs = Table(
    "tier_evaluation_runs",
    metadata,
    Column("award_period_id", Uuid, ForeignKey("award_periods.id"), primary_key=True),
    Column("organisation_id", Uuid, nullable=False),
    Column("config_fingerprint", String(64), nullable=False),
    Column("evaluated_at", Timestamp, nullable=False),
    Column("full_evaluated_at", Timestamp, nullable=False),
    Column("mentors_evaluated", Integer, nullable=False),
    Column("promotions", Integer, nullable=False),
)
