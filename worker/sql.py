"""Small dialect-portable SQL helpers (PostgreSQL and SQLite)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, Table, any_, bindparam, or_
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.sql.dml import Insert


def insert_for(conn: Connection, table: Table) -> Any:
    """The dialect's INSERT, which has ``on_conflict_do_nothing/update``."""
    if conn.dialect.name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


def in_values(conn: Connection, column: Any, values: Sequence[Any]) -> Any:
    """``column IN values``; one array parameter on PostgreSQL (no giant statement text)."""
    if conn.dialect.name == "postgresql":
        return column == any_(bindparam(None, list(values), type_=postgresql.ARRAY(column.type)))
    return column.in_(list(values))


def upsert_changed(
    conn: Connection,
    table: Table,
    rows: Sequence[dict[str, Any]],
    *,
    key: Sequence[str],
    compare: Sequence[str],
    also_set: Sequence[str] = (),
) -> int:
    """Insert rows, or update those whose ``compare`` columns differ.

    Rows identical to what is stored are left alone (so re-applying the same
    configuration changes nothing, not even ``updated_at``).  Returns the
    number of rows inserted or changed.
    """
    if not rows:
        return 0
    stmt: Insert = insert_for(conn, table)
    excluded = stmt.excluded  # type: ignore[attr-defined]
    changed = or_(*(table.c[c].is_distinct_from(excluded[c]) for c in compare))
    stmt = stmt.on_conflict_do_update(  # type: ignore[attr-defined]
        index_elements=[table.c[k] for k in key],
        set_={c: excluded[c] for c in (*compare, *also_set)},
        where=changed,
    ).returning(table.c[key[0]])
    # RETURNING yields exactly the inserted or updated rows (rowcount is not
    # reliable for multi-row upserts across drivers).
    return len(conn.execute(stmt, list(rows)).all())
