"""Row-level security on the shared tables, exercised the way PostgREST calls PostgreSQL.

PostgREST runs each request in a transaction: ``SET LOCAL ROLE <token role>``
and ``set_config('request.jwt.claims', <claims>, true)``, then the query.  Each
caller here does the same inside a savepoint of the test's transaction, so
the role and claims end with the savepoint and all data is rolled back.
"""

from __future__ import annotations

import importlib.util
import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from sqlalchemy import Connection, Engine, insert, make_url, select, text
from sqlalchemy.exc import ProgrammingError

from schema.migrate import upgrade
from schema.tables import award_periods, earned_badges, notifications, tier_assignments
from tests import services
from tests.helpers import badge, threshold
from tests.integration.harness import ROOT, apply, organisation
from worker.badges.awards import award_badge
from worker.db.engine import make_engine

NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
SHARED = ("earned_badges", "notifications", "tier_assignments", "badge_definitions")
PER_MENTOR = ("earned_badges", "notifications", "tier_assignments")


@dataclass
class Org:
    id: uuid.UUID = field(default_factory=uuid.uuid4)
    mentors: tuple[uuid.UUID, uuid.UUID] = field(
        default_factory=lambda: (uuid.uuid4(), uuid.uuid4())
    )
    #: table -> row ids of this organisation, per mentor
    rows: dict[str, dict[uuid.UUID, uuid.UUID]] = field(default_factory=dict)
    definition: uuid.UUID | None = None


def _populate(conn: Connection, org: Org) -> Org:
    """Per mentor: one earned badge, one notification, one tier assignment."""
    period = uuid.uuid4()
    apply(
        conn,
        {"organisations": [organisation(org.id)], "badges": [badge(org.id, "one", threshold(1))]},
    )
    org.definition = conn.execute(
        text("SELECT id FROM badge_definitions WHERE organisation_id = :o"), {"o": org.id}
    ).scalar_one()
    conn.execute(
        insert(award_periods).values(
            id=period,
            organisation_id=org.id,
            name="2026",
            start_date=date(2026, 1, 1),
            end_date=date(2026, 12, 31),
            updated_at=NOW,
        )
    )
    org.rows = {table: {} for table in PER_MENTOR}
    for mentor in org.mentors:
        earned = award_badge(conn, org.definition, mentor, now=NOW, source="manual").earned
        org.rows["earned_badges"][mentor] = earned.id
        notification, assignment = uuid.uuid4(), uuid.uuid4()
        conn.execute(
            insert(notifications).values(
                id=notification,
                peer_mentor_id=mentor,
                organisation_id=org.id,
                kind="badge_earned",
                payload={"code": "one"},
                created_at=NOW,
            )
        )
        conn.execute(
            insert(tier_assignments).values(
                id=assignment,
                peer_mentor_id=mentor,
                organisation_id=org.id,
                award_period_id=period,
                tier=1,
                assigned_at=NOW,
            )
        )
        org.rows["notifications"][mentor] = notification
        org.rows["tier_assignments"][mentor] = assignment
    return org


@pytest.fixture
def orgs(conn: Connection) -> tuple[Org, Org]:
    return _populate(conn, Org()), _populate(conn, Org())


@contextmanager
def caller(conn: Connection, claims: dict[str, Any] | None, role: str) -> Iterator[Connection]:
    """Run as PostgREST would for a request with these claims (undone afterwards)."""
    savepoint = conn.begin_nested()
    try:
        conn.execute(text(f"SET LOCAL ROLE {role}"))
        if claims is not None:
            conn.execute(
                text("SELECT set_config('request.jwt.claims', :claims, true)"),
                {"claims": json.dumps(claims)},
            )
        yield conn
    finally:
        savepoint.rollback()


def supabase_user(org: Org, badges_role: str, sub: uuid.UUID, **metadata: str) -> dict[str, Any]:
    return {
        "aud": "authenticated",
        "role": "authenticated",
        "sub": str(sub),
        "app_metadata": {"badges_role": badges_role, "organisation_id": str(org.id), **metadata},
    }


def visible(conn: Connection, table: str, org: Org) -> set[uuid.UUID]:
    """Ids of ``org``'s rows in ``table`` the current caller can select."""
    rows = conn.execute(text(f"SELECT id FROM {table} WHERE organisation_id = :o"), {"o": org.id})
    return {row.id for row in rows}


def everything(conn: Connection, table: str) -> int:
    return int(conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one())


def test_a_mentor_selects_only_their_own_rows(conn: Connection, orgs: tuple[Org, Org]) -> None:
    mine, other = orgs
    me = mine.mentors[0]
    with caller(conn, supabase_user(mine, "mentor", me), "authenticated"):
        for table in PER_MENTOR:
            assert visible(conn, table, mine) == {mine.rows[table][me]}, table
            assert visible(conn, table, other) == set(), table
            assert everything(conn, table) == 1, table
        assert visible(conn, "badge_definitions", mine) == {mine.definition}
        assert everything(conn, "badge_definitions") == 1


def test_the_mentor_is_app_metadatas_peer_mentor_id_when_present(
    conn: Connection, orgs: tuple[Org, Org]
) -> None:
    mine, _ = orgs
    me = mine.mentors[1]
    claims = supabase_user(mine, "mentor", uuid.uuid4(), peer_mentor_id=str(me))
    with caller(conn, claims, "authenticated"):
        assert visible(conn, "earned_badges", mine) == {mine.rows["earned_badges"][me]}


def test_project_token_claims_work_too(conn: Connection, orgs: tuple[Org, Org]) -> None:
    mine, _ = orgs
    me = mine.mentors[0]
    claims = {"role": "mentor", "organisation_id": str(mine.id), "sub": str(me)}
    with caller(conn, claims, "authenticated"):
        assert visible(conn, "notifications", mine) == {mine.rows["notifications"][me]}


def test_an_org_admin_selects_only_their_organisations_rows(
    conn: Connection, orgs: tuple[Org, Org]
) -> None:
    mine, other = orgs
    with caller(conn, supabase_user(mine, "org_admin", uuid.uuid4()), "authenticated"):
        for table in PER_MENTOR:
            assert visible(conn, table, mine) == set(mine.rows[table].values()), table
            assert everything(conn, table) == 2, table
        assert everything(conn, "badge_definitions") == 1
        assert visible(conn, "badge_definitions", other) == set()


@pytest.mark.parametrize(
    "claims",
    [
        None,  # no claims at all
        {"role": "authenticated", "sub": str(uuid.uuid4())},  # signed in, no badges role
        {"role": "authenticated", "app_metadata": {"badges_role": "mentor"}},  # no organisation
        {"role": "authenticated", "app_metadata": {"badges_role": "root", "organisation_id": "x"}},
    ],
    ids=["no-claims", "no-badges-role", "no-organisation", "malformed"],
)
def test_authenticated_without_a_usable_badges_role_sees_nothing(
    conn: Connection, orgs: tuple[Org, Org], claims: dict[str, Any] | None
) -> None:
    with caller(conn, claims, "authenticated"):
        for table in SHARED:
            assert everything(conn, table) == 0, table


@pytest.mark.parametrize(
    "table", [*SHARED, "activity_ledger", "badge_audit", "notification_outbox"]
)
def test_anon_reads_nothing(conn: Connection, orgs: tuple[Org, Org], table: str) -> None:
    with (
        caller(conn, {"role": "anon"}, "anon"),
        pytest.raises(ProgrammingError, match="permission denied"),
    ):
        everything(conn, table)


@pytest.mark.parametrize("table", ["activity_ledger", "badge_audit", "notification_outbox"])
def test_internal_tables_are_closed_to_authenticated(
    conn: Connection, orgs: tuple[Org, Org], table: str
) -> None:
    mine, _ = orgs
    with (
        caller(conn, supabase_user(mine, "org_admin", uuid.uuid4()), "authenticated"),
        pytest.raises(ProgrammingError, match="permission denied"),
    ):
        everything(conn, table)


@pytest.mark.parametrize("badges_role", ["mentor", "org_admin"])
def test_authenticated_can_neither_delete_nor_insert_earned_badges(
    conn: Connection, orgs: tuple[Org, Org], badges_role: str
) -> None:
    mine, _ = orgs
    me = mine.mentors[0]
    claims = supabase_user(mine, badges_role, me)
    with caller(conn, claims, "authenticated"), pytest.raises(ProgrammingError, match="denied"):
        conn.execute(text("DELETE FROM earned_badges WHERE peer_mentor_id = :m"), {"m": me})
    with caller(conn, claims, "authenticated"), pytest.raises(ProgrammingError, match="denied"):
        conn.execute(
            insert(earned_badges).values(
                id=uuid.uuid4(),
                badge_definition_id=mine.definition,
                peer_mentor_id=uuid.uuid4(),
                organisation_id=mine.id,
                earned_at=NOW,
            )
        )
    assert everything(conn, "earned_badges") >= 4  # as the owner again: all still there


def test_a_mentor_marks_their_own_notification_read_and_nothing_else(
    conn: Connection, orgs: tuple[Org, Org]
) -> None:
    mine, other = orgs
    me, colleague = mine.mentors
    own, theirs = mine.rows["notifications"][me], mine.rows["notifications"][colleague]
    foreign = other.rows["notifications"][other.mentors[0]]
    mark = text("UPDATE notifications SET read_at = now() WHERE id = :id")
    claims = supabase_user(mine, "mentor", me)
    savepoint = conn.begin_nested()
    with caller(conn, claims, "authenticated"):
        assert conn.execute(mark, {"id": own}).rowcount == 1
        assert conn.execute(mark, {"id": theirs}).rowcount == 0
        assert conn.execute(mark, {"id": foreign}).rowcount == 0
        read = conn.execute(select(notifications.c.id).where(notifications.c.read_at.is_not(None)))
        marked = {row.id for row in read}
    assert marked == {own}
    savepoint.rollback()
    with caller(conn, claims, "authenticated"), pytest.raises(ProgrammingError, match="denied"):
        conn.execute(text("UPDATE notifications SET kind = 'x' WHERE id = :id"), {"id": own})
    with caller(conn, claims, "authenticated"), pytest.raises(ProgrammingError, match="denied"):
        conn.execute(text("DELETE FROM notifications WHERE id = :id"), {"id": own})


def test_an_org_admin_cannot_mark_a_mentors_notification_read(
    conn: Connection, orgs: tuple[Org, Org]
) -> None:
    mine, _ = orgs
    theirs = mine.rows["notifications"][mine.mentors[0]]
    with caller(conn, supabase_user(mine, "org_admin", uuid.uuid4()), "authenticated"):
        updated = conn.execute(
            text("UPDATE notifications SET read_at = now() WHERE id = :id"), {"id": theirs}
        )
        assert updated.rowcount == 0


def test_the_service_role_bypasses_rls_and_may_revoke(
    conn: Connection, orgs: tuple[Org, Org]
) -> None:
    mine, other = orgs
    claims = {"role": "service_role", "iss": "supabase"}
    with caller(conn, claims, "service_role"):
        assert visible(conn, "earned_badges", mine) == set(mine.rows["earned_badges"].values())
        assert visible(conn, "earned_badges", other) == set(other.rows["earned_badges"].values())
        deleted = conn.execute(
            text("DELETE FROM earned_badges WHERE organisation_id = :o"), {"o": mine.id}
        )
        assert deleted.rowcount == 2


# --- the migration on a database shaped like Supabase's ---------------------------------------


@pytest.fixture
def supabase_like() -> Iterator[Engine]:
    """A fresh database whose default privileges grant every new table and function to the
    client roles, as Supabase's do."""
    url = services.create_database()
    engine = make_engine(url)
    try:
        with engine.begin() as c:
            c.execute(
                text(
                    "ALTER DEFAULT PRIVILEGES IN SCHEMA public "
                    "GRANT ALL ON TABLES TO anon, authenticated, service_role"
                )
            )
            c.execute(
                text(
                    "ALTER DEFAULT PRIVILEGES IN SCHEMA public "
                    "GRANT EXECUTE ON FUNCTIONS TO anon, authenticated, service_role"
                )
            )
        yield engine
    finally:
        engine.dispose()
        services.drop_database(url)


def test_the_migration_closes_supabases_default_grants(supabase_like: Engine) -> None:
    upgrade(supabase_like)
    with supabase_like.connect() as c:
        rows = c.execute(
            text(
                "SELECT table_name, privilege_type FROM information_schema.role_table_grants"
                " WHERE grantee IN ('anon', 'authenticated') ORDER BY 1, 2"
            )
        ).all()
        secured = c.execute(
            text("SELECT relname FROM pg_class WHERE relrowsecurity ORDER BY relname")
        ).scalars()
        assert set(secured) == set(SHARED)
    assert sorted((r.table_name, r.privilege_type) for r in rows) == sorted(
        [(table, "SELECT") for table in SHARED]
    )
    with supabase_like.connect() as c:
        callable_by_anon = c.execute(
            text(
                "SELECT proname FROM pg_proc WHERE proname LIKE 'badges\\_%'"
                " AND has_function_privilege('anon', oid, 'EXECUTE')"
            )
        ).all()
    assert callable_by_anon == []
    upgrade(supabase_like)  # already at head: nothing to do, nothing fails


def _migration() -> ModuleType:
    path = ROOT / "schema" / "migrations" / "versions" / "0005_row_level_security.py"
    spec = importlib.util.spec_from_file_location("rls_migration", Path(path))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_missing_roles_are_created_and_existing_ones_kept(conn: Connection) -> None:
    """With role names of this test only: the real ones are shared by the whole cluster."""
    from alembic.migration import MigrationContext
    from alembic.operations import Operations

    migration = _migration()
    suffix = uuid.uuid4().hex[:8]
    roles = {f"t_anon_{suffix}": "", f"t_service_{suffix}": " BYPASSRLS"}
    with Operations.context(MigrationContext.configure(conn)):
        migration.create_missing_roles(roles)
        migration.create_missing_roles(roles)  # already there: kept, no error
    found = conn.execute(
        text("SELECT rolname, rolcanlogin, rolbypassrls FROM pg_roles WHERE rolname = ANY(:n)"),
        {"n": list(roles)},
    ).all()
    assert sorted(tuple(r) for r in found) == [
        (f"t_anon_{suffix}", False, False),
        (f"t_service_{suffix}", False, True),
    ]


def test_the_migration_downgrades_and_upgrades_again(supabase_like: Engine) -> None:
    from schema.migrate import current_revision, downgrade

    upgrade(supabase_like)
    head = current_revision(supabase_like)
    downgrade(supabase_like, "0003")
    with supabase_like.connect() as c:
        secured = c.execute(text("SELECT count(*) FROM pg_class WHERE relrowsecurity")).scalar()
        policies = c.execute(text("SELECT count(*) FROM pg_policies")).scalar()
    assert (secured, policies) == (0, 0)
    upgrade(supabase_like)
    assert current_revision(supabase_like) == head


@pytest.fixture
def owned_by_plain_role() -> Iterator[tuple[Engine, str]]:
    """A fresh database owned by a role that is no superuser, as ``postgres`` is on Supabase."""
    role = f"badges_test_owner_{uuid.uuid4().hex[:8]}"
    url = services.create_database()
    admin = make_engine(services.ADMIN_URL, isolation_level="AUTOCOMMIT")
    database = url.rsplit("/", 1)[1]
    with admin.connect() as c:
        c.execute(text(f"CREATE ROLE {role} LOGIN NOSUPERUSER NOCREATEROLE"))
        c.execute(text(f'ALTER DATABASE "{database}" OWNER TO {role}'))
    engine = make_engine(make_url(url).set(username=role).render_as_string(hide_password=False))
    try:
        yield engine, role
    finally:
        engine.dispose()
        services.drop_database(url)
        with admin.connect() as c:
            c.execute(text(f"DROP ROLE IF EXISTS {role}"))
        admin.dispose()


def test_the_migration_runs_as_a_plain_owner_when_the_roles_exist(
    owned_by_plain_role: tuple[Engine, str], engine: Engine
) -> None:
    """The roles exist already (the session's migration created them, Supabase ships them)."""
    plain, role = owned_by_plain_role
    upgrade(plain)
    with plain.connect() as c:
        owners = set(
            c.execute(
                text("SELECT tableowner FROM pg_tables WHERE tablename = ANY(:t)"),
                {"t": list(SHARED)},
            ).scalars()
        )
        secured = c.execute(text("SELECT count(*) FROM pg_class WHERE relrowsecurity")).scalar()
    assert owners == {role}
    assert secured == len(SHARED)
