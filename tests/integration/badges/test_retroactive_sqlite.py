"""``badges definitions apply`` on the embedded default (SQLite file, filesystem broker).

A history imported with ``badges import activities``, then a file adding a
badge: the dry run prints the counts and writes nothing, the real apply
prints the same counts and awards them (backfill, in-app only).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import func, select

from schema.tables import earned_badges, notification_outbox
from worker.db.engine import make_engine


def _badges(tmp_path: Path, *args: str) -> str:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "BROKER_URL")}
    done = subprocess.run(
        [sys.executable, "-m", "worker.cli", *args],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def _config(org: uuid.UUID, badges: list[dict[str, Any]]) -> dict[str, Any]:
    return {"organisations": [{"id": str(org), "name": "Embedded"}], "badges": badges}


def test_apply_on_sqlite_previews_then_awards_existing_mentors(tmp_path: Path) -> None:
    org = uuid.uuid4()
    mentors = [uuid.uuid4() for _ in range(6)]
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(_config(org, [])))
    _badges(tmp_path, "db", "upgrade")
    _badges(tmp_path, "definitions", "apply", str(path))
    lines = [
        json.dumps({"id": str(uuid.uuid4()), "organisation_id": str(org),
                    "peer_mentor_id": str(m), "activity_type": "peer_session",
                    "activity_date": (date(2026, 3, 2) + timedelta(days=d)).isoformat(),
                    "course_id": None})
        for i, m in enumerate(mentors) for d in range(i)
    ]  # fmt: skip
    history = tmp_path / "history.jsonl"
    history.write_text("\n".join(lines) + "\n")
    _badges(tmp_path, "import", "activities", str(history))

    criteria = {"type": "threshold", "version": 1, "activity_types": ["peer_session"],
                "min_count": 3}  # fmt: skip
    badge = {"organisation_id": str(org), "code": "three", "name": "Three", "criteria": criteria}
    path.write_text(yaml.safe_dump(_config(org, [badge])))
    dry = _badges(tmp_path, "definitions", "apply", str(path), "--dry-run")
    assert "badge three: 3 mentor(s) would newly earn it" in dry
    engine = make_engine(f"sqlite:///{tmp_path / '.badges-data' / 'badges.sqlite3'}")
    try:
        with engine.connect() as c:
            assert c.execute(select(func.count()).select_from(earned_badges)).scalar_one() == 0
        real = _badges(tmp_path, "definitions", "apply", str(path))
        assert "badge three: 3 mentor(s) newly earned it" in real
        with engine.connect() as c:
            held = set(c.scalars(select(earned_badges.c.peer_mentor_id)))
            outbox = sorted(
                c.execute(select(notification_outbox.c.channel, notification_outbox.c.state)).all()
            )
    finally:
        engine.dispose()
    assert held == set(mentors[3:])
    # In-app only: no push gateway is configured, so the push channel is disabled.
    assert outbox == [("in_app", "pending")] * 3
