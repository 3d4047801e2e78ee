"""Heartbeat files: a liveness probe reads their modification time.

A process touches its file while it is healthy (the worker while its
consumer is connected and consuming, beat on every scheduler tick); a probe
such as ``test $(( $(date +%s) - $(stat -c %Y FILE) )) -lt 30`` fails once
touches stop, whether the process hung, lost its broker for good or died.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

log = logging.getLogger(__name__)

#: How often the file is touched; a probe should allow a few missed touches.
HEARTBEAT_INTERVAL_S = 5.0


def touch(path: Path) -> None:
    """Create ``path`` (and its folder) if needed and set its mtime to now; never raises."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch(exist_ok=True)
        os.utime(path, None)
    except OSError as exc:
        log.warning("cannot touch heartbeat file %s: %s", path, exc)


def heartbeat_age_s(path: Path, *, now: float) -> float | None:
    """Seconds since the last touch, or None when the file does not exist."""
    try:
        return max(0.0, now - path.stat().st_mtime)
    except FileNotFoundError:
        return None
