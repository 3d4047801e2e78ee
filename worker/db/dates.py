"""Calendar arithmetic as SQL expressions, for PostgreSQL and SQLite.

Set-based jobs (tier re-evaluation, reconcile) group dates into ISO weeks and
months inside the database.  The two dialects spell date arithmetic
differently, so each helper renders the dialect's own form.  Days are numbered
from 0001-01-01, a Monday: ``day_number // 7`` is then a week number that
grows by exactly one from one ISO week to the next, and never goes negative.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, Date, Integer, cast, func, literal_column, type_coerce
from sqlalchemy.sql.elements import ColumnElement

from worker.db.engine import is_postgres

_EPOCH = "0001-01-01"  # a Monday
# Constants are rendered inline, never as bind parameters: PostgreSQL matches a
# GROUP BY expression to the select list textually, and two placeholders for
# the same constant would not match.
_SEVEN = literal_column("7", Integer)


def day_number(conn: Connection, day: ColumnElement[Any]) -> ColumnElement[int]:
    """Whole days from 0001-01-01 to ``day``."""
    if is_postgres(conn):
        # date - date is an integer number of days in PostgreSQL.
        return type_coerce(day - literal_column(f"DATE '{_EPOCH}'"), Integer)
    return cast(func.julianday(day) - func.julianday(literal_column(f"'{_EPOCH}'")), Integer)


def week_number(conn: Connection, day: ColumnElement[Any]) -> ColumnElement[int]:
    """Consecutive ISO weeks have consecutive numbers."""
    return day_number(conn, day) // _SEVEN


def week_start(conn: Connection, day: ColumnElement[Any]) -> ColumnElement[Any]:
    """The Monday of ``day``'s ISO week."""
    if is_postgres(conn):
        return type_coerce(day - day_number(conn, day) % _SEVEN, Date)
    # SQLite: forward to the Sunday ending the week (or stay on it), back six days.
    return type_coerce(
        func.date(day, literal_column("'weekday 0'"), literal_column("'-6 days'")), Date
    )


def month_start(conn: Connection, day: ColumnElement[Any]) -> ColumnElement[Any]:
    """The first day of ``day``'s month."""
    if is_postgres(conn):
        return cast(func.date_trunc(literal_column("'month'"), day), Date)
    return type_coerce(func.date(day, literal_column("'start of month'")), Date)


def month_number(conn: Connection, day: ColumnElement[Any]) -> ColumnElement[int]:
    """``year * 12 + month - 1``: consecutive months have consecutive numbers."""
    if is_postgres(conn):
        year = cast(func.date_part(literal_column("'year'"), day), Integer)
        month = cast(func.date_part(literal_column("'month'"), day), Integer)
    else:
        year = cast(func.strftime(literal_column("'%Y'"), day), Integer)
        month = cast(func.strftime(literal_column("'%m'"), day), Integer)
    return year * literal_column("12", Integer) + month - literal_column("1", Integer)
