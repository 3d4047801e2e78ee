"""quarantine replay marks and periodic job runs

``quarantined_events.replayed_at``: when ``badges quarantine replay`` fed
the event through ingestion successfully (null: still quarantined).
``periodic_job_runs``: the last successful run of each periodic job, which
the web ``/metrics`` exports so an alert can fire when a job stops running.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("quarantined_events") as batch:
        batch.add_column(sa.Column("replayed_at", sa.DateTime(timezone=True), nullable=True))
    op.create_table(
        "periodic_job_runs",
        sa.Column("job", sa.String(length=64), nullable=False),
        sa.Column("last_success_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_duration_s", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("job", name=op.f("pk_periodic_job_runs")),
    )
    if op.get_bind().dialect.name == "postgresql":
        # An internal table: client roles (created by 0005) read nothing of it,
        # whatever default privileges the database grants new tables.
        op.execute("REVOKE ALL ON periodic_job_runs FROM anon, authenticated")


def downgrade() -> None:
    op.drop_table("periodic_job_runs")
    with op.batch_alter_table("quarantined_events") as batch:
        batch.drop_column("replayed_at")
