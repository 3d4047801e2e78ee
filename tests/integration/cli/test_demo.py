"""``badges demo`` on the embedded default: SQLite file + filesystem broker, a real worker."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path

from worker.cli.demo_data import expected_awards, generate, sample_configuration


def test_demo_runs_on_the_embedded_default_and_awards_what_the_data_earns(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "BROKER_URL")}
    done = subprocess.run(
        [sys.executable, "-m", "worker.cli", "demo", "--json", "--mentors", "24", "--seed", "11"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout)
    assert (tmp_path / ".badges-data" / "badges.sqlite3").exists()
    # Runtime files (broker control folder, worker log) stay in the data directory.
    assert [p.name for p in tmp_path.iterdir()] == [".badges-data"]
    assert result["messages_published"] == (
        result["events_processed"] + result["duplicates_ignored"] + result["quarantined"]
    )
    assert result["quarantined"] == 3
    assert result["duplicates_ignored"] > 0

    # The sample is reproducible from the organisation id and the seed.
    org, year = uuid.UUID(result["organisation_id"]), datetime.now(UTC).year
    config = sample_configuration(org, year)
    data = generate(org, mentors=24, year=year, seed=11)
    assert result["messages_published"] == len(data.events)
    revocable = {b["code"] for b in config["badges"] if b.get("revocable")}
    expected = expected_awards(data, config)
    actual = {uuid.UUID(m["peer_mentor_id"]): set(m["badges"]) for m in result["mentors"]}
    assert actual.keys() == expected.keys()
    for mentor, codes in expected.items():
        # Everything the final data earns is awarded; anything more can only be a
        # non-revocable badge earned before an update or delete took its basis away.
        assert codes <= actual[mentor], mentor
        assert not (actual[mentor] - codes) & revocable, mentor
    assert sum(len(c) for c in actual.values()) > len(actual)
    assert max(m["longest_weekly_streak"] for m in result["mentors"]) >= 4
