"""Row-level security on the shared tables; a delivery lease on notification_outbox

Clients that read the shared tables directly (a Supabase app through
PostgREST) are kept to their own rows by PostgreSQL itself:

* roles ``anon``, ``authenticated`` and ``service_role`` are created (NOLOGIN,
  ``service_role`` with BYPASSRLS) unless they exist, as they do on Supabase;
* RLS is enabled on ``earned_badges``, ``notifications``, ``tier_assignments``
  and ``badge_definitions``.  Policies read the caller from
  ``current_setting('request.jwt.claims', true)``, which PostgREST sets per
  request: a mentor selects only their own rows (their organisation's badge
  definitions), an org admin their organisation's rows; ``authenticated`` may
  update only ``notifications.read_at``, only on the mentor's own rows;
* ``anon`` and ``authenticated`` lose every other privilege on the worker's
  tables, including the ones Supabase's default privileges grant on every new
  table: nobody but the owner (the worker's role) and ``service_role``
  inserts or deletes earned badges.

The owner of the tables (the role that runs the migrations, the worker and the
API) is not subject to RLS, so they keep working unchanged.  SQLite has no
RLS and no roles: there only the lease columns are added.

The lease (``claimed_by``, ``claimed_until``) replaces a session advisory lock
held across the push gateway call, which a transaction-mode pooler (PgBouncer,
Supabase's pooler) cannot keep.

Downgrade drops the policies, helper functions, grants and lease columns; the
roles stay (they are cluster-wide and may be used by other databases), and
privileges revoked from ``anon``/``authenticated`` are not restored.

Revision ID: 0005
Revises: 0003
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0003"
branch_labels = None
depends_on = None

#: Roles as PostgREST (and Supabase) name them: (name, extra attributes).
ROLES = {"anon": "", "authenticated": "", "service_role": " BYPASSRLS"}
#: Tables other systems read, with the policies that expose them.
SHARED_TABLES = ("earned_badges", "notifications", "tier_assignments", "badge_definitions")
#: The worker's internal tables at this revision: no client role reads them.
INTERNAL_TABLES = (
    "organisations",
    "badge_audit",
    "activity_ledger",
    "processed_events",
    "mentors",
    "mentor_activity_counts",
    "daily_activity_counts",
    "period_activity_counts",
    "completed_courses",
    "recognition_tiers",
    "award_periods",
    "notification_outbox",
    "quarantined_events",
    "tier_evaluation_runs",
    "alembic_version",
)
_UUID_PATTERN = "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"

# The caller, from the claims PostgREST sets per request.  Two claim shapes:
# the project's own tokens (role mentor | org_admin, organisation_id, sub) and
# Supabase user tokens (role authenticated, app_metadata.badges_role,
# app_metadata.organisation_id, app_metadata.peer_mentor_id or sub).
# app_metadata is writable only with the service role key, unlike user_metadata.
_FUNCTIONS = {
    "badges_jwt_claims": """
        SELECT nullif(current_setting('request.jwt.claims', true), '')::jsonb
    """,
    "badges_caller_role": """
        SELECT CASE WHEN r IN ('mentor', 'org_admin') THEN r END
        FROM (SELECT coalesce(c #>> '{app_metadata,badges_role}', c ->> 'role') AS r
              FROM (SELECT @schema@.badges_jwt_claims() AS c) claims) caller
    """,
    "badges_caller_organisation": """
        SELECT CASE WHEN o ~ '@uuid@' THEN o::uuid END
        FROM (SELECT coalesce(c #>> '{app_metadata,organisation_id}', c ->> 'organisation_id') AS o
              FROM (SELECT @schema@.badges_jwt_claims() AS c) claims) caller
    """,
    "badges_caller_mentor": """
        SELECT CASE WHEN m ~ '@uuid@' THEN m::uuid END
        FROM (SELECT coalesce(c #>> '{app_metadata,peer_mentor_id}', c ->> 'sub') AS m
              FROM (SELECT @schema@.badges_jwt_claims() AS c) claims) caller
    """,
}
_RETURNS = {
    "badges_jwt_claims": "jsonb",
    "badges_caller_role": "text",
    "badges_caller_organisation": "uuid",
    "badges_caller_mentor": "uuid",
}


def _org_member(schema: str) -> str:
    """The caller belongs to the row's organisation (as mentor or org admin)."""
    return (
        f"(SELECT {schema}.badges_caller_role()) IS NOT NULL"
        f" AND organisation_id = (SELECT {schema}.badges_caller_organisation())"
    )


def _own_or_organisations(schema: str) -> str:
    """A mentor's own row, or any row of the org admin's organisation."""
    return (
        f"{_org_member(schema)} AND ((SELECT {schema}.badges_caller_role()) = 'org_admin'"
        f" OR peer_mentor_id = (SELECT {schema}.badges_caller_mentor()))"
    )


def _own(schema: str) -> str:
    """The calling mentor's own row."""
    return (
        f"(SELECT {schema}.badges_caller_role()) = 'mentor'"
        f" AND organisation_id = (SELECT {schema}.badges_caller_organisation())"
        f" AND peer_mentor_id = (SELECT {schema}.badges_caller_mentor())"
    )


def _policies(schema: str) -> list[tuple[str, str, str, str]]:
    """(table, policy name, command, USING/WITH CHECK expression)."""
    return [
        ("earned_badges", "earned_badges_select", "SELECT", _own_or_organisations(schema)),
        ("notifications", "notifications_select", "SELECT", _own_or_organisations(schema)),
        ("notifications", "notifications_mark_read", "UPDATE", _own(schema)),
        ("tier_assignments", "tier_assignments_select", "SELECT", _own_or_organisations(schema)),
        ("badge_definitions", "badge_definitions_select", "SELECT", _org_member(schema)),
    ]


def create_missing_roles(roles: dict[str, str]) -> None:
    """Create each role NOLOGIN unless it exists (Supabase has them; parallel runs race)."""
    for name, attributes in roles.items():
        op.execute(
            f"""
            DO $$
            BEGIN
                IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = '{name}') THEN
                    CREATE ROLE {name} NOLOGIN NOINHERIT{attributes};
                END IF;
            EXCEPTION WHEN duplicate_object OR unique_violation THEN
                NULL;  -- created meanwhile by a concurrent migration of another database
            END
            $$
            """
        )


def upgrade() -> None:
    with op.batch_alter_table("notification_outbox") as batch:
        batch.add_column(sa.Column("claimed_by", sa.Uuid(), nullable=True))
        batch.add_column(sa.Column("claimed_until", sa.DateTime(timezone=True), nullable=True))
    if op.get_bind().dialect.name != "postgresql":
        return
    schema = op.get_bind().execute(sa.text("SELECT current_schema()")).scalar_one()
    schema = f'"{schema}"'
    create_missing_roles(ROLES)
    for name, body in _FUNCTIONS.items():
        op.execute(
            f"CREATE OR REPLACE FUNCTION {schema}.{name}() RETURNS {_RETURNS[name]}"
            f" LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp"
            f" AS $fn$ {body.replace('@schema@', schema).replace('@uuid@', _UUID_PATTERN)} $fn$"
        )
    functions = ", ".join(f"{schema}.{name}()" for name in _FUNCTIONS)
    # Only the policies' roles call them (Supabase would expose them to anon as RPCs).
    op.execute(f"REVOKE ALL ON FUNCTION {functions} FROM PUBLIC, anon")
    op.execute(f"GRANT EXECUTE ON FUNCTION {functions} TO authenticated, service_role")
    op.execute(f"GRANT USAGE ON SCHEMA {schema} TO anon, authenticated, service_role")
    tables = ", ".join(SHARED_TABLES)
    op.execute(f"REVOKE ALL ON {tables}, {', '.join(INTERNAL_TABLES)} FROM anon, authenticated")
    op.execute(f"GRANT SELECT ON {tables} TO authenticated")
    op.execute("GRANT UPDATE (read_at) ON notifications TO authenticated")
    op.execute(f"GRANT ALL ON {tables} TO service_role")
    for table in SHARED_TABLES:
        op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
    for table, policy, command, expression in _policies(schema):
        check = f" WITH CHECK ({expression})" if command == "UPDATE" else ""
        op.execute(
            f"CREATE POLICY {policy} ON {table} AS PERMISSIVE FOR {command} TO authenticated"
            f" USING ({expression}){check}"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        schema = op.get_bind().execute(sa.text("SELECT current_schema()")).scalar_one()
        schema = f'"{schema}"'
        for table, policy, _command, _expression in _policies(schema):
            op.execute(f"DROP POLICY IF EXISTS {policy} ON {table}")
        for table in SHARED_TABLES:
            op.execute(f"ALTER TABLE {table} DISABLE ROW LEVEL SECURITY")
        tables = ", ".join(SHARED_TABLES)
        op.execute(f"REVOKE ALL ON {tables} FROM authenticated, service_role")
        for name in reversed(list(_FUNCTIONS)):
            op.execute(f"DROP FUNCTION IF EXISTS {schema}.{name}()")
    with op.batch_alter_table("notification_outbox") as batch:
        batch.drop_column("claimed_until")
        batch.drop_column("claimed_by")
