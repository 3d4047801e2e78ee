"""``unit_of_work``: after-commit actions run once, with everything registered, only on commit."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from worker.db.engine import make_engine
from worker.db.unit_of_work import after_commit, unit_of_work


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    engine = make_engine(f"sqlite:///{tmp_path / 'uow.sqlite3'}")
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE t (n INTEGER)"))
    yield engine
    engine.dispose()


def rows(engine: Engine) -> list[int]:
    with engine.connect() as conn:
        return list(conn.scalars(text("SELECT n FROM t ORDER BY n")))


def test_actions_run_after_the_commit_once_each_with_all_their_items(engine: Engine) -> None:
    calls: list[tuple[str, list[int], list[int]]] = []

    def first(items: list[int]) -> None:
        calls.append(("first", items, rows(engine)))  # the commit is visible to others

    def second(items: list[int]) -> None:
        calls.append(("second", items, rows(engine)))

    with unit_of_work(engine) as conn:
        conn.execute(text("INSERT INTO t VALUES (1)"))
        after_commit(conn, first, [1])
        after_commit(conn, second, [10])
        after_commit(conn, first, [2, 3])
        after_commit(conn, first, [])
        assert calls == []

    assert calls == [("first", [1, 2, 3], [1]), ("second", [10], [1])]


def test_nothing_runs_when_the_unit_of_work_rolls_back(engine: Engine) -> None:
    calls: list[list[int]] = []
    with pytest.raises(RuntimeError), unit_of_work(engine) as conn:
        conn.execute(text("INSERT INTO t VALUES (1)"))
        after_commit(conn, calls.append, [1])
        raise RuntimeError("boom")
    assert calls == [] and rows(engine) == []

    with unit_of_work(engine) as conn:  # the next unit of work starts with nothing pending
        conn.execute(text("INSERT INTO t VALUES (2)"))
    assert calls == [] and rows(engine) == [2]


def test_a_failing_action_neither_undoes_the_commit_nor_stops_the_others(
    engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    calls: list[list[int]] = []

    def broken(items: list[int]) -> None:
        raise ConnectionError("broker unreachable")

    with unit_of_work(engine) as conn:
        conn.execute(text("INSERT INTO t VALUES (1)"))
        after_commit(conn, broken, [1])
        after_commit(conn, calls.append, [2])

    assert rows(engine) == [1] and calls == [[2]]
    assert "after-commit action broken failed" in caplog.text


def test_a_plain_transaction_runs_no_actions(engine: Engine) -> None:
    calls: list[list[int]] = []
    with engine.begin() as conn:
        after_commit(conn, calls.append, [1])
    with unit_of_work(engine) as conn:
        pass
    assert calls == []
