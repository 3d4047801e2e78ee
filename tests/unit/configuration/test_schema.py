from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest

from worker.configuration.schema import (
    ConfigurationError,
    load_configuration_file,
    validate_configuration,
)

ORG = str(uuid.uuid4())


def base() -> dict[str, Any]:
    return {
        "organisations": [{"id": ORG, "name": "NHF Demo", "language": "nb"}],
        "badges": [
            {
                "organisation_id": ORG,
                "code": "ten-sessions",
                "name": "10 likepersonssamtaler",
                "criteria": {
                    "type": "threshold",
                    "version": 1,
                    "activity_types": ["peer_session"],
                    "min_count": 10,
                },
            }
        ],
        "tiers": [
            {"organisation_id": ORG, "level": "gold", "min_assignments": 20, "min_streak": 8}
        ],
        "award_periods": [
            {
                "organisation_id": ORG,
                "name": 2026,
                "start_date": "2026-01-01",
                "end_date": "2026-12-31",
            }
        ],
    }


def problems(data: dict[str, Any]) -> list[str]:
    with pytest.raises(ConfigurationError) as info:
        validate_configuration(data)
    return info.value.problems


def test_a_valid_file_parses_with_stable_ids() -> None:
    first, second = validate_configuration(base()), validate_configuration(base())
    assert first.badges[0].id == second.badges[0].id
    assert first.award_periods[0].name == "2026"
    assert first.tiers[0].to_tier().level == 3


@pytest.mark.parametrize(
    ("section", "change", "expected"),
    [
        ("badges", {"criteria": {"type": "magic", "version": 1}}, "badges[0] (code 'ten-sessions').criteria: "),
        ("badges", {"criteria": {"type": "threshold", "version": 9, "min_count": 1}},
         "badges[0] (code 'ten-sessions').criteria.version: Input should be 1"),
        ("badges", {"criteria": {"type": "threshold", "version": 1, "min_count": -5}},
         "badges[0] (code 'ten-sessions').criteria.min_count: "),
        ("badges", {"criteria": {"type": "streak", "version": 1, "period": "fortnight", "min_length": 2}},
         "badges[0] (code 'ten-sessions').criteria.period: Input should be 'week' or 'month'"),
        ("tiers", {"level": "diamond"}, "tiers[0] (level 'diamond').level: unknown tier level 'diamond'; allowed: bronze, silver, gold, platinum"),
        ("tiers", {"level": 7}, "tiers[0] (level 7).level: unknown tier level 7"),
        ("award_periods", {"end_date": "2025-12-31"}, "award_periods[0] (name 2026): end_date 2025-12-31 is before start_date 2026-01-01"),
        ("organisations", {"language": "sv"}, "organisations[0] (name 'NHF Demo').language: "),
        ("badges", {"code": "Ten Sessions"}, "badges[0] (code 'Ten Sessions').code: "),
    ],
)  # fmt: skip
def test_each_problem_names_item_and_field(
    section: str, change: dict[str, Any], expected: str
) -> None:
    data = base()
    data[section][0].update(change)
    found = problems(data)
    assert any(p.startswith(expected) for p in found), found


def test_duplicates_and_unknown_sections_are_reported() -> None:
    data = base()
    data["badges"].append(dict(data["badges"][0]))
    assert problems(data) == ["badges[1]: duplicates badges[0]"]
    assert problems({"badgez": []})[0].startswith("file: unknown key(s) badgez")


def test_raw_criteria_are_accepted_with_a_warning() -> None:
    data = base()
    data["badges"][0]["criteria"] = {"type": "raw", "version": 1, "raw": {"anything": True}}
    config = validate_configuration(data)
    assert len(config.warnings) == 1 and "never evaluated automatically" in config.warnings[0]


def test_files_are_read_as_yaml_or_json(tmp_path: Path) -> None:
    yaml_file = tmp_path / "org.yaml"
    yaml_file.write_text(
        f"badges:\n  - organisation_id: {ORG}\n    code: first\n    name: First\n"
        "    criteria: {type: threshold, version: 1, min_count: 1}\n"
    )
    assert load_configuration_file(yaml_file).badges[0].code == "first"
    broken = tmp_path / "org.json"
    broken.write_text("{not json")
    with pytest.raises(ConfigurationError, match=r"not valid \.json"):
        load_configuration_file(broken)
