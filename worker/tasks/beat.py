"""Celery beat's scheduler with a heartbeat file, its state kept in the data directory.

``BEAT_HEARTBEAT_FILE`` is touched on every scheduler tick: the beat loop
calls :meth:`HeartbeatScheduler.tick` at least every
:data:`~worker.observability.heartbeat.HEARTBEAT_INTERVAL_S` seconds, so the
file goes stale when the loop hangs or the process is gone.  The schedule
state file (``celerybeat-schedule``) lives in ``BADGES_DATA_DIR``, not in
whatever directory beat was started from.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from celery.beat import PersistentScheduler

from worker.core.settings import get_settings
from worker.observability import heartbeat


class HeartbeatScheduler(PersistentScheduler):  # type: ignore[misc]
    def setup_schedule(self) -> None:
        Path(self.schedule_filename).parent.mkdir(parents=True, exist_ok=True)
        super().setup_schedule()

    def tick(self, *args: Any, **kwargs: Any) -> float:
        path = get_settings().beat_heartbeat_file
        if path is not None:
            heartbeat.touch(path)
        return min(float(super().tick(*args, **kwargs)), heartbeat.HEARTBEAT_INTERVAL_S)
