"""``badges definitions apply`` against PostgreSQL: all or nothing, idempotent, exit codes."""

from __future__ import annotations

import copy
import json
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import Engine, func, select

from schema.tables import award_periods, badge_definitions, organisations, recognition_tiers
from worker.cli import main


def config(org: uuid.UUID) -> dict[str, Any]:
    o = str(org)
    return {
        "organisations": [{"id": o, "name": "HLF Demo", "language": "en"}],
        "badges": [
            {"organisation_id": o, "code": "ten-sessions", "name": "Ten sessions",
             "criteria": {"type": "threshold", "version": 1, "activity_types": ["peer_session"], "min_count": 10}},
            {"organisation_id": o, "code": "steady", "name": "Steady", "revocable": True,
             "criteria": {"type": "streak", "version": 1, "period": "week", "min_length": 4}},
        ],
        "tiers": [{"organisation_id": o, "level": "gold", "min_assignments": 20, "min_streak": 8}],
        "award_periods": [{"organisation_id": o, "name": "2026", "start_date": "2026-01-01",
                           "end_date": "2026-12-31", "is_active": True}],
    }  # fmt: skip


def counts(engine: Engine, org: uuid.UUID) -> dict[str, int]:
    with engine.connect() as c:
        return {
            t.name: int(
                c.execute(
                    select(func.count())
                    .select_from(t)
                    .where((t.c.id if t is organisations else t.c.organisation_id) == org)
                ).scalar_one()
            )
            for t in (organisations, badge_definitions, recognition_tiers, award_periods)
        }


def write(tmp_path: Path, data: dict[str, Any], suffix: str = ".yaml") -> Path:
    path = tmp_path / f"config{suffix}"
    path.write_text(yaml.safe_dump(data) if suffix == ".yaml" else json.dumps(data))
    return path


def test_apply_writes_everything_and_twice_changes_nothing(
    engine: Engine, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    org = uuid.uuid4()
    path = write(tmp_path, config(org))
    assert main(["definitions", "apply", str(path)]) == 0
    assert (
        "changed 1 organisation(s), 2 badge(s), 1 tier(s), 1 award period(s)"
        in capsys.readouterr().out
    )
    with engine.connect() as c:
        before = c.execute(select(badge_definitions).order_by(badge_definitions.c.code)).all()
    assert main(["definitions", "apply", str(write(tmp_path, config(org), ".json"))]) == 0
    assert (
        "changed 0 organisation(s), 0 badge(s), 0 tier(s), 0 award period(s)"
        in capsys.readouterr().out
    )
    with engine.connect() as c:
        after = c.execute(select(badge_definitions).order_by(badge_definitions.c.code)).all()
    assert before == after  # not even updated_at moved
    assert counts(engine, org) == {
        "organisations": 1, "badge_definitions": 2, "recognition_tiers": 1, "award_periods": 1,
    }  # fmt: skip


def _break(data: dict[str, Any], section: str, index: int, **change: Any) -> dict[str, Any]:
    broken = copy.deepcopy(data)
    broken[section][index].update(change)
    return broken


@pytest.mark.parametrize(
    ("section", "index", "change", "named"),
    [
        ("badges", 0, {"criteria": {"type": "sometimes", "version": 1}}, "badges[0] (code 'ten-sessions').criteria"),
        ("badges", 0, {"criteria": {"type": "threshold", "version": 3, "min_count": 1}}, "criteria.version"),
        ("badges", 0, {"criteria": {"type": "threshold", "version": 1, "min_count": -1}}, "criteria.min_count"),
        ("badges", 1, {"criteria": {"type": "streak", "version": 1, "period": "day", "min_length": 2}}, "badges[1] (code 'steady').criteria.period"),
        ("tiers", 0, {"level": "diamond"}, "tiers[0] (level 'diamond').level"),
        ("award_periods", 0, {"end_date": "2025-06-30"}, "award_periods[0] (name '2026'): end_date 2025-06-30 is before start_date"),
    ],
)  # fmt: skip
def test_invalid_files_exit_2_name_the_field_and_write_nothing(
    engine: Engine, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    section: str, index: int, change: dict[str, Any], named: str,
) -> None:  # fmt: skip
    org = uuid.uuid4()
    path = write(tmp_path, _break(config(org), section, index, **change))
    assert main(["definitions", "apply", str(path)]) == 2
    err = capsys.readouterr().err
    assert "nothing written" in err and named in err, err
    assert counts(engine, org) == dict.fromkeys(
        ("organisations", "badge_definitions", "recognition_tiers", "award_periods"), 0
    )


def test_unknown_organisation_is_rejected(
    engine: Engine, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    org = uuid.uuid4()
    data = config(org)
    data["organisations"] = []
    assert main(["definitions", "apply", str(write(tmp_path, data))]) == 2
    assert f"badges[0].organisation_id: unknown organisation {org}" in capsys.readouterr().err
    assert counts(engine, org)["badge_definitions"] == 0


def test_raw_criteria_apply_with_a_warning(
    engine: Engine, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    org = uuid.uuid4()
    data = _break(config(org), "badges", 0, criteria={"type": "raw", "version": 1, "raw": {"x": 1}})
    assert main(["definitions", "apply", str(write(tmp_path, data))]) == 0
    assert (
        "warning: badges (code 'ten-sessions'): raw criteria are stored" in capsys.readouterr().out
    )


def test_dry_run_writes_nothing(
    engine: Engine, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    org = uuid.uuid4()
    assert main(["definitions", "apply", "--dry-run", str(write(tmp_path, config(org)))]) == 0
    assert "would change 1 organisation(s)" in capsys.readouterr().out
    assert counts(engine, org)["organisations"] == 0


def test_missing_file_is_invalid_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["definitions", "apply", str(tmp_path / "nope.yaml")]) == 2
    assert "cannot read" in capsys.readouterr().err
