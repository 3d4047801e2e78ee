"""The CLI for someone trying it for the first time: versions, help, hints, pipes, lines."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from worker.cli import build_parser, main, package_version
from worker.cli.demo import DemoResult, print_summary

ROOT = Path(__file__).resolve().parents[3]


def _embedded_env(data: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "BROKER_URL")}
    return {
        **env,
        "BADGES_DATA_DIR": str(data),
        "PATH": f"{Path(sys.executable).parent}:{env['PATH']}",
    }


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out.strip() == f"badges {package_version()}"
    assert package_version() != "unknown"


def test_every_argument_has_help_and_defaults_are_shown() -> None:
    parser = build_parser()
    pending = [parser]
    seen = 0
    while pending:
        current = pending.pop()
        for action in current._actions:
            if action.choices and hasattr(action, "_name_parser_map"):
                pending.extend(action._name_parser_map.values())
                continue
            assert action.help, (current.prog, action.dest)
            seen += 1
    assert seen > 30
    demo_help = subprocess.run(
        [sys.executable, "-m", "worker.cli", "demo", "--help"], capture_output=True, text=True,
        check=True, cwd=ROOT,
    ).stdout  # fmt: skip
    assert "(default: 36)" in demo_help


def test_a_closed_pipe_ends_quietly(tmp_path: Path) -> None:
    done = subprocess.run(
        ["bash", "-c", "set -o pipefail; badges schema events | head -1"],
        env=_embedded_env(tmp_path / "data"), capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "{"
    assert done.stderr == ""


def test_upgrade_says_what_it_applied_and_a_missing_schema_gives_a_hint(tmp_path: Path) -> None:
    env = _embedded_env(tmp_path / "data")
    mentor = str(uuid.uuid4())

    def badges(*argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["badges", *argv], env=env, cwd=tmp_path, capture_output=True, text=True, check=False
        )

    before = badges("earned", "--mentor", mentor)
    assert before.returncode == 1
    assert before.stderr.strip() == (
        "badges: error: the database has no tables yet; run `badges db upgrade` first"
    )
    first = badges("db", "upgrade")
    assert "applied migration 0001: initial schema" in first.stdout
    assert "now at revision" in first.stdout
    second = badges("db", "upgrade")
    assert "nothing applied" in second.stdout and "applied migration" not in second.stdout
    assert badges("earned", "--mentor", mentor).returncode == 0


def test_definitions_errors_name_item_and_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    org = uuid.uuid4()
    path = tmp_path / "bad.yaml"
    path.write_text(
        f"organisations:\n  - {{id: {org}, name: X}}\naward_periods:\n"
        f"  - organisation_id: {org}\n    name: '2026'\n"
        "    start_date: 2026-13-01\n    end_date: 2026-12-31\n",
        encoding="utf-8",
    )
    assert main(["definitions", "apply", str(path)]) == 2
    err = capsys.readouterr().err
    assert "line 4: award_periods[0] (name '2026').start_date:" in err


def test_demo_summary_prints_full_ids_and_what_to_try_next(
    capsys: pytest.CaptureFixture[str],
) -> None:
    mentor = uuid.uuid4()
    print_summary(
        DemoResult(
            organisation_id=uuid.uuid4(), messages_published=3, events_processed=3,
            duplicates_ignored=0, quarantined=0, badges_by_mentor={mentor: ["first"]},
            longest_weekly_streak={mentor: 1}, seconds=1.0,
        )
    )  # fmt: skip
    out = capsys.readouterr().out
    assert str(mentor) in out
    assert f"badges earned --mentor {mentor}" in out
    # The suite runs on PostgreSQL: the demo's data stays there, and it says so.
    assert "stays in the configured database" in out
