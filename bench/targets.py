"""The performance targets, checked against a scenario's result (never asserted by tests).

A target that only applies at full size (``import``: 1,000,000 activities;
``tiers.seconds``: 100,000 mentors) is ``None`` when the run was smaller.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Check = Callable[[dict[str, Any]], bool | None]


def _at_size(key: str, size: int, check: Check) -> Check:
    return lambda r: check(r) if r.get(key, 0) >= size else None


TARGETS: dict[str, dict[str, Check]] = {
    "ingest": {
        "ratio >= 1.5": lambda r: r["ratio"] >= 1.5,
        "p99_ms <= 1000": lambda r: r["p99_ms"] <= 1000,
    },
    "scale": {
        "ratio >= 1.6": lambda r: r["ratio"] >= 1.6,
        "per_core_ratio >= 0.9 (hot: 200 mentors)": lambda r: r["per_core_ratio"] >= 0.9,
        "lock_wait_share_two <= 0.10 (hot)": lambda r: r["lock_wait_share_two"] <= 0.10,
        "realistic.per_core_ratio >= 0.95 (10,000 mentors)": lambda r: (
            r["realistic"]["per_core_ratio"] >= 0.95
        ),
    },
    "history": {"ratio <= 1.25": lambda r: r["ratio"] <= 1.25},
    "tiers": {
        "seconds <= 10 (100,000 mentors)": _at_size(
            "mentors", 100_000, lambda r: r["seconds"] <= 10
        ),
        "speedup >= 50": lambda r: r["speedup"] >= 50,
    },
    "import": {
        "seconds <= 120 (1,000,000 activities)": _at_size(
            "activities", 1_000_000, lambda r: r["seconds"] <= 120
        ),
        "floor_ratio <= 3": lambda r: r["floor_ratio"] <= 3,
    },
    "retro": {"speedup >= 20": lambda r: r["speedup"] >= 20},
    "recovery": {
        "max_seconds <= 30": lambda r: r["max_seconds"] <= 30,
        "sigterm_max_seconds < 30 (no stall)": lambda r: r["sigterm_max_seconds"] < 30,
    },
    "memory": {
        "rss_end_mb within 10% of rss_start_mb": lambda r: (
            abs(r["rss_end_mb"] - r["rss_start_mb"]) <= 0.1 * r["rss_start_mb"]
        ),
        "rss_max_mb <= 200": lambda r: r["rss_max_mb"] <= 200,
    },
}


def check(scenario: str, result: dict[str, Any]) -> dict[str, bool | None]:
    """Target description -> met (True/False), or None when it does not apply."""
    return {name: test(result) for name, test in TARGETS.get(scenario, {}).items()}
