"""The alert rules parse, and every metric they name is exported by the worker or the web."""

from __future__ import annotations

import re
from pathlib import Path

import yaml
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from api.app import create_app
from tests.integration.api.harness import SECRET
from worker.observability.metrics import EXPORTED_NAMES

ROOT = Path(__file__).resolve().parents[3]
RULES = ROOT / "deploy" / "prometheus" / "alerts.yml"
#: Series Prometheus itself provides for every scrape target.
PROMETHEUS_OWN = {"up"}


def _exported_by_web(engine: Engine) -> set[str]:
    with TestClient(create_app(jwt_secret=SECRET, engine=engine)) as client:
        text = client.get("/metrics").text
    return {
        line.split("{")[0].split(" ")[0] for line in text.splitlines() if line and line[0] != "#"
    }


def test_every_metric_an_alert_names_is_exported(sqlite_engine: Engine) -> None:
    rules = yaml.safe_load(RULES.read_text(encoding="utf-8"))
    alerts = [rule for group in rules["groups"] for rule in group["rules"]]
    assert {"BadgesAwardConflict", "BadgesDeadLetters", "BadgesOutboxStuck",
            "BadgesIngestionStuck", "BadgesPeriodicJobNotRun", "BadgesWorkerDown"} <= {
        rule["alert"] for rule in alerts
    }  # fmt: skip
    exported = EXPORTED_NAMES | _exported_by_web(sqlite_engine) | PROMETHEUS_OWN
    for rule in alerts:
        assert rule["annotations"]["runbook"].startswith("docs/operations.md#")
        named = set(re.findall(r"\bbadges_[a-z_]+", rule["expr"]))
        named |= set(re.findall(r"\b(up)\{", rule["expr"]))
        assert named, rule["alert"]
        assert named <= exported, (rule["alert"], named - exported)
