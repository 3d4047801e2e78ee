"""``query_result``: a query's rows through a temporary table on PostgreSQL."""

from __future__ import annotations

from typing import Any

import pytest
from psycopg import errors
from sqlalchemy import Connection, Select, func, literal, select, text
from sqlalchemy.exc import DBAPIError

from worker.db.sql import query_result


def _squares() -> Select[Any]:
    series = func.generate_series(1, 50).table_valued("n").render_derived(name="s")
    return select(
        series.c.n.label("n"), (series.c.n * series.c.n).label("square"), literal("x").label("tag")
    )


def _temporary_tables(conn: Connection) -> list[str]:
    return list(
        conn.scalars(
            text("SELECT relname FROM pg_class WHERE relpersistence = 't' AND relname = 'squares'")
        )
    )


def test_rows_are_the_querys_and_the_table_is_gone_after_the_block(conn: Connection) -> None:
    query = _squares()
    expected = conn.execute(query.order_by("n")).all()
    with query_result(conn, "squares", query) as rows:
        assert _temporary_tables(conn) == ["squares"]
        got = conn.execute(select(rows).order_by(rows.c.n)).all()
        doubled = conn.execute(select(func.sum(rows.c.square))).scalar_one()
    assert got == expected and len(got) == 50
    assert doubled == sum(i * i for i in range(1, 51))
    assert _temporary_tables(conn) == []


def test_a_failed_statement_in_the_block_surfaces_and_the_rollback_drops_the_table(
    conn: Connection,
) -> None:
    """The block's own error propagates (a DROP in the failed transaction would mask it)."""
    savepoint = conn.begin_nested()
    with pytest.raises(DBAPIError) as failure, query_result(conn, "squares", _squares()):
        assert _temporary_tables(conn) == ["squares"]
        conn.execute(text("SELECT 1 / 0"))
    assert isinstance(failure.value.orig, errors.DivisionByZero)
    savepoint.rollback()
    assert _temporary_tables(conn) == []
