"""tier_evaluation_runs: state for incremental tier re-evaluation

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "tier_evaluation_runs",
        sa.Column("award_period_id", sa.Uuid(), nullable=False),
        sa.Column("organisation_id", sa.Uuid(), nullable=False),
        sa.Column("config_fingerprint", sa.String(length=64), nullable=False),
        sa.Column("evaluated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("full_evaluated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("mentors_evaluated", sa.Integer(), nullable=False),
        sa.Column("promotions", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["award_period_id"],
            ["award_periods.id"],
            name=op.f("fk_tier_evaluation_runs_award_period_id_award_periods"),
        ),
        sa.PrimaryKeyConstraint("award_period_id", name=op.f("pk_tier_evaluation_runs")),
    )


def downgrade() -> None:
    op.drop_table("tier_evaluation_runs")
