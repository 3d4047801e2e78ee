"""Beat: a heartbeat file, its schedule state in the data directory, job successes recorded."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from sqlalchemy import Engine, select

from schema.tables import periodic_job_runs
from tests.helpers import wait_for
from tests.integration.harness import WorkerProcess


def test_beat_touches_its_heartbeat_and_keeps_its_files_in_the_data_dir(
    clean_db: Engine, worker: WorkerProcess, tmp_path: Path
) -> None:
    cwd, data, alive = tmp_path / "cwd", tmp_path / "data", tmp_path / "beat.alive"
    cwd.mkdir()
    env = {
        **os.environ,
        "BADGES_DATA_DIR": str(data),
        "BEAT_HEARTBEAT_FILE": str(alive),
        "TIER_REEVALUATION_INTERVAL_S": "1",
        "OUTBOX_RELAY_INTERVAL_S": "1",
    }
    log_path = tmp_path / "beat.log"
    with log_path.open("wb") as log:
        beat = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "worker", "beat", "--loglevel", "INFO"],
            cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        first = wait_for(
            lambda: alive.stat().st_mtime if alive.exists() else None,
            until=lambda m: m is not None,
            what="the beat heartbeat file",
        )
        assert first is not None
        wait_for(
            lambda: alive.stat().st_mtime,
            until=lambda m: m > first,
            what="the heartbeat to be touched again",
        )

        def jobs() -> set[str]:
            with clean_db.connect() as c:
                return set(c.scalars(select(periodic_job_runs.c.job)))

        assert wait_for(
            jobs,
            until=lambda j: {"reevaluate_tiers", "relay_outbox"} <= j,
            what="the periodic jobs' successes to be recorded",
        ) >= {"reevaluate_tiers", "relay_outbox"}
    finally:
        beat.terminate()
        beat.wait(timeout=30)
    assert list(cwd.iterdir()) == [], "beat leaves nothing in the current directory"
    assert any(p.name.startswith("celerybeat-schedule") for p in data.iterdir()), (
        log_path.read_text(errors="replace")
    )
