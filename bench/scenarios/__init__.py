"""One module per scenario; each exposes ``run(*, quick: bool) -> dict``."""

from __future__ import annotations

SCENARIOS = ("ingest", "scale", "history", "tiers", "import", "memory", "retro", "recovery")

#: Module name per scenario (``import`` is a keyword).
MODULES = {name: f"bench.scenarios.{name}" for name in SCENARIOS} | {
    "import": "bench.scenarios.history_import"
}
