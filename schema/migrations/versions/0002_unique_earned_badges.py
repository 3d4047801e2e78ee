"""earned_badges: one row per (badge_definition_id, peer_mentor_id)

Older writers could leave duplicate awards.  Before the unique constraint is
added, every duplicate except the earliest ``earned_at`` per pair (ties broken
by the smallest id) is removed, and each removed row is written to
``badge_audit`` with action ``deduplicated`` so no award disappears without a
trace.  The number removed is logged.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

log = logging.getLogger("alembic.runtime.migration")

_DUPLICATES = sa.text(
    """
    SELECT id, badge_definition_id, peer_mentor_id, organisation_id, earned_at
    FROM (
        SELECT e.*, ROW_NUMBER() OVER (
            PARTITION BY badge_definition_id, peer_mentor_id
            ORDER BY earned_at, id
        ) AS rank_in_pair
        FROM earned_badges e
    ) ranked
    WHERE rank_in_pair > 1
    """
)


def upgrade() -> None:
    bind = op.get_bind()
    duplicates = bind.execute(_DUPLICATES).mappings().all()
    if duplicates:
        now = datetime.now(UTC)
        audit = sa.table(
            "badge_audit",
            sa.column("action", sa.String),
            sa.column("earned_badge_id", sa.Uuid),
            sa.column("badge_definition_id", sa.Uuid),
            sa.column("peer_mentor_id", sa.Uuid),
            sa.column("organisation_id", sa.Uuid),
            sa.column("earned_at", sa.DateTime(timezone=True)),
            sa.column("reason", sa.Text),
            sa.column("actor", sa.String),
            sa.column("recorded_at", sa.DateTime(timezone=True)),
        )
        bind.execute(
            audit.insert(),
            [
                {
                    "action": "deduplicated",
                    "earned_badge_id": row["id"],
                    "badge_definition_id": row["badge_definition_id"],
                    "peer_mentor_id": row["peer_mentor_id"],
                    "organisation_id": row["organisation_id"],
                    "earned_at": row["earned_at"],
                    "reason": "deduplicated",
                    "actor": "migration 0002",
                    "recorded_at": now,
                }
                for row in duplicates
            ],
        )
        earned = sa.table("earned_badges", sa.column("id", sa.Uuid))
        ids = [row["id"] for row in duplicates]
        for start in range(0, len(ids), 500):
            bind.execute(earned.delete().where(earned.c.id.in_(ids[start : start + 500])))
    log.info(
        "earned_badges: removed %d duplicate award(s) before adding the unique constraint",
        len(duplicates),
    )
    with op.batch_alter_table("earned_badges") as batch:
        batch.create_unique_constraint(
            "uq_earned_badges_badge_definition_id_peer_mentor_id",
            ["badge_definition_id", "peer_mentor_id"],
        )


def downgrade() -> None:
    with op.batch_alter_table("earned_badges") as batch:
        batch.drop_constraint("uq_earned_badges_badge_definition_id_peer_mentor_id", type_="unique")
