"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-22 11:01:11.254767
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "activity_ledger",
        sa.Column("activity_id", sa.Uuid(), nullable=False),
        sa.Column("organisation_id", sa.Uuid(), nullable=False),
        sa.Column("peer_mentor_id", sa.Uuid(), nullable=False),
        sa.Column("activity_type", sa.String(length=64), nullable=True),
        sa.Column("activity_date", sa.Date(), nullable=True),
        sa.Column("course_id", sa.String(length=128), nullable=True),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_event_id", sa.Uuid(), nullable=False),
        sa.Column("deleted", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("activity_id", name=op.f("pk_activity_ledger")),
    )
    with op.batch_alter_table("activity_ledger", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_activity_ledger_peer_mentor_id_activity_date_activity_type"),
            ["peer_mentor_id", "activity_date", "activity_type"],
            unique=False,
        )

    op.create_table(
        "award_periods",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("organisation_id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("start_date", sa.Date(), nullable=False),
        sa.Column("end_date", sa.Date(), nullable=False),
        sa.Column("is_active", sa.Boolean(), server_default=sa.true(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_award_periods")),
        sa.UniqueConstraint(
            "organisation_id", "name", name=op.f("uq_award_periods_organisation_id_name")
        ),
    )
    op.create_table(
        "badge_audit",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("action", sa.String(length=20), nullable=False),
        sa.Column("earned_badge_id", sa.Uuid(), nullable=False),
        sa.Column("badge_definition_id", sa.Uuid(), nullable=False),
        sa.Column("peer_mentor_id", sa.Uuid(), nullable=False),
        sa.Column("organisation_id", sa.Uuid(), nullable=False),
        sa.Column("earned_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("actor", sa.String(length=200), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_badge_audit")),
    )
    op.create_table(
        "badge_definitions",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("organisation_id", sa.Uuid(), nullable=False),
        sa.Column("code", sa.String(length=100), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("description", sa.Text(), server_default="", nullable=False),
        sa.Column(
            "criteria",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("enabled", sa.Boolean(), server_default=sa.true(), nullable=False),
        sa.Column("revocable", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_badge_definitions")),
        sa.UniqueConstraint(
            "organisation_id", "code", name=op.f("uq_badge_definitions_organisation_id_code")
        ),
    )
    op.create_table(
        "completed_courses",
        sa.Column("peer_mentor_id", sa.Uuid(), nullable=False),
        sa.Column("course_id", sa.String(length=128), nullable=False),
        sa.Column("organisation_id", sa.Uuid(), nullable=False),
        sa.Column("activity_count", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("peer_mentor_id", "course_id", name=op.f("pk_completed_courses")),
    )
    op.create_table(
        "daily_activity_counts",
        sa.Column("peer_mentor_id", sa.Uuid(), nullable=False),
        sa.Column("activity_date", sa.Date(), nullable=False),
        sa.Column("activity_type", sa.String(length=64), nullable=False),
        sa.Column("organisation_id", sa.Uuid(), nullable=False),
        sa.Column("activity_count", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint(
            "peer_mentor_id",
            "activity_date",
            "activity_type",
            name=op.f("pk_daily_activity_counts"),
        ),
    )
    op.create_table(
        "mentor_activity_counts",
        sa.Column("peer_mentor_id", sa.Uuid(), nullable=False),
        sa.Column("activity_type", sa.String(length=64), nullable=False),
        sa.Column("organisation_id", sa.Uuid(), nullable=False),
        sa.Column("activity_count", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint(
            "peer_mentor_id", "activity_type", name=op.f("pk_mentor_activity_counts")
        ),
    )
    op.create_table(
        "mentors",
        sa.Column("peer_mentor_id", sa.Uuid(), nullable=False),
        sa.Column("organisation_id", sa.Uuid(), nullable=False),
        sa.Column("stats_changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("peer_mentor_id", name=op.f("pk_mentors")),
    )
    with op.batch_alter_table("mentors", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_mentors_organisation_id_stats_changed_at"),
            ["organisation_id", "stats_changed_at"],
            unique=False,
        )

    op.create_table(
        "notification_outbox",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("dedup_key", sa.String(length=200), nullable=False),
        sa.Column("channel", sa.String(length=10), nullable=False),
        sa.Column("kind", sa.String(length=40), nullable=False),
        sa.Column("peer_mentor_id", sa.Uuid(), nullable=False),
        sa.Column("organisation_id", sa.Uuid(), nullable=False),
        sa.Column(
            "payload",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("state", sa.String(length=10), server_default="pending", nullable=False),
        sa.Column("backfill", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("dispatched_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notification_outbox")),
        sa.UniqueConstraint(
            "dedup_key", "channel", name=op.f("uq_notification_outbox_dedup_key_channel")
        ),
    )
    with op.batch_alter_table("notification_outbox", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_notification_outbox_state_dispatched_at"),
            ["state", "dispatched_at"],
            unique=False,
        )

    op.create_table(
        "notifications",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("peer_mentor_id", sa.Uuid(), nullable=False),
        sa.Column("organisation_id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.String(length=40), nullable=False),
        sa.Column(
            "payload",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("read_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("outbox_id", sa.Uuid(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notifications")),
        sa.UniqueConstraint("outbox_id", name=op.f("uq_notifications_outbox_id")),
    )
    with op.batch_alter_table("notifications", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_notifications_peer_mentor_id_created_at"),
            ["peer_mentor_id", "created_at"],
            unique=False,
        )

    op.create_table(
        "organisations",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("language", sa.String(length=2), server_default="nb", nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_organisations")),
    )
    op.create_table(
        "period_activity_counts",
        sa.Column("peer_mentor_id", sa.Uuid(), nullable=False),
        sa.Column("period", sa.String(length=5), nullable=False),
        sa.Column("period_start", sa.Date(), nullable=False),
        sa.Column("activity_type", sa.String(length=64), nullable=False),
        sa.Column("organisation_id", sa.Uuid(), nullable=False),
        sa.Column("activity_count", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint(
            "peer_mentor_id",
            "period",
            "period_start",
            "activity_type",
            name=op.f("pk_period_activity_counts"),
        ),
    )
    op.create_table(
        "processed_events",
        sa.Column("event_id", sa.Uuid(), nullable=False),
        sa.Column("activity_id", sa.Uuid(), nullable=False),
        sa.Column("processed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("event_id", name=op.f("pk_processed_events")),
    )
    op.create_table(
        "quarantined_events",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("event_id", sa.String(length=100), nullable=True),
        sa.Column("task_id", sa.String(length=200), nullable=True),
        sa.Column("raw_payload", sa.Text(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_quarantined_events")),
    )
    op.create_table(
        "recognition_tiers",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("organisation_id", sa.Uuid(), nullable=False),
        sa.Column("level", sa.Integer(), nullable=False),
        sa.Column("min_assignments", sa.Integer(), nullable=False),
        sa.Column("min_streak", sa.Integer(), nullable=False),
        sa.Column(
            "activity_types",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_recognition_tiers")),
        sa.UniqueConstraint(
            "organisation_id", "level", name=op.f("uq_recognition_tiers_organisation_id_level")
        ),
    )
    op.create_table(
        "earned_badges",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("badge_definition_id", sa.Uuid(), nullable=False),
        sa.Column("peer_mentor_id", sa.Uuid(), nullable=False),
        sa.Column("organisation_id", sa.Uuid(), nullable=False),
        sa.Column("earned_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "award_source", sa.String(length=20), server_default="evaluation", nullable=False
        ),
        sa.ForeignKeyConstraint(
            ["badge_definition_id"],
            ["badge_definitions.id"],
            name=op.f("fk_earned_badges_badge_definition_id_badge_definitions"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_earned_badges")),
        # The (badge_definition_id, peer_mentor_id) unique constraint comes in
        # 0002, which first removes duplicates that older writers may have left.
    )
    with op.batch_alter_table("earned_badges", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_earned_badges_organisation_id_peer_mentor_id_earned_at_id"),
            ["organisation_id", "peer_mentor_id", "earned_at", "id"],
            unique=False,
        )

    op.create_table(
        "tier_assignments",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("peer_mentor_id", sa.Uuid(), nullable=False),
        sa.Column("organisation_id", sa.Uuid(), nullable=False),
        sa.Column("award_period_id", sa.Uuid(), nullable=False),
        sa.Column("tier", sa.Integer(), nullable=False),
        sa.Column("assigned_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["award_period_id"],
            ["award_periods.id"],
            name=op.f("fk_tier_assignments_award_period_id_award_periods"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tier_assignments")),
        sa.UniqueConstraint(
            "peer_mentor_id",
            "award_period_id",
            name=op.f("uq_tier_assignments_peer_mentor_id_award_period_id"),
        ),
    )


def downgrade() -> None:
    op.drop_table("tier_assignments")
    with op.batch_alter_table("earned_badges", schema=None) as batch_op:
        batch_op.drop_index(
            batch_op.f("ix_earned_badges_organisation_id_peer_mentor_id_earned_at_id")
        )

    op.drop_table("earned_badges")
    op.drop_table("recognition_tiers")
    op.drop_table("quarantined_events")
    op.drop_table("processed_events")
    op.drop_table("period_activity_counts")
    op.drop_table("organisations")
    with op.batch_alter_table("notifications", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_notifications_peer_mentor_id_created_at"))

    op.drop_table("notifications")
    with op.batch_alter_table("notification_outbox", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_notification_outbox_state_dispatched_at"))

    op.drop_table("notification_outbox")
    with op.batch_alter_table("mentors", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_mentors_organisation_id_stats_changed_at"))

    op.drop_table("mentors")
    op.drop_table("mentor_activity_counts")
    op.drop_table("daily_activity_counts")
    op.drop_table("completed_courses")
    op.drop_table("badge_definitions")
    op.drop_table("badge_audit")
    op.drop_table("award_periods")
    with op.batch_alter_table("activity_ledger", schema=None) as batch_op:
        batch_op.drop_index(
            batch_op.f("ix_activity_ledger_peer_mentor_id_activity_date_activity_type")
        )

    op.drop_table("activity_ledger")
