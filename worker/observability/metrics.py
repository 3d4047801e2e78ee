"""The worker's Prometheus metrics, and the HTTP endpoint that serves them.

Counters are incremented by the task adapters from the result objects the
services return (an :class:`~worker.ingestion.ingest.IngestResult`, a
delivery outcome), so domain code stays free of metrics.  With
``WORKER_METRICS_PORT`` set, the worker's main process serves
``/metrics`` on that port, summed over its pool processes through
prometheus_client's multiprocess mode (see :mod:`worker.observability.metrics_env`).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    start_http_server,
)
from prometheus_client import multiprocess as prometheus_multiprocess

from worker.observability.metrics_env import MULTIPROC_ENV

log = logging.getLogger(__name__)

EVENT_OUTCOMES = ("applied", "duplicate", "stale", "quarantined")
AWARD_SOURCES = ("evaluation", "manual", "backfill")

EVENTS = Counter(
    "badges_events",
    "Consumed activity event messages, by outcome (one count per message)",
    ["outcome"],
)
AWARDS = Counter("badges_awards", "Badges awarded (rows written), by source", ["source"])
AWARD_CONFLICTS = Counter(
    "badges_award_conflicts",
    "Awards the unique constraint caught although the locked check said not earned (a race)",
)
REVOCATIONS = Counter("badges_revocations", "Revocable badges revoked by evaluation")
NOTIFICATIONS = Counter(
    "badges_notifications",
    "Notification deliveries, by channel and outcome",
    ["channel", "outcome"],
)
BATCH_SECONDS = Histogram(
    "badges_batch_seconds",
    "Time to process one ingest batch (one unit of work)",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
EVENT_AGE_SECONDS = Histogram(
    "badges_event_age_seconds",
    "Age of an event when its batch committed: occurred_at to commit",
    buckets=(0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 21600, 86400),
)

#: Every name the worker exports (the Prometheus text names, with suffixes).
EXPORTED_NAMES = frozenset(
    {
        "badges_events_total",
        "badges_awards_total",
        "badges_award_conflicts_total",
        "badges_revocations_total",
        "badges_notifications_total",
        "badges_batch_seconds",
        "badges_batch_seconds_bucket",
        "badges_batch_seconds_count",
        "badges_batch_seconds_sum",
        "badges_event_age_seconds",
        "badges_event_age_seconds_bucket",
        "badges_event_age_seconds_count",
        "badges_event_age_seconds_sum",
    }
)

# Pre-create the label sets so a scrape shows zeros rather than missing series.
for _outcome in EVENT_OUTCOMES:
    EVENTS.labels(outcome=_outcome)
for _source in AWARD_SOURCES:
    AWARDS.labels(source=_source)


def record_events(*, applied: int, duplicates: int, stale: int, quarantined: int) -> None:
    for outcome, count in (
        ("applied", applied),
        ("duplicate", duplicates),
        ("stale", stale),
        ("quarantined", quarantined),
    ):
        if count:
            EVENTS.labels(outcome=outcome).inc(count)


def record_awards(source: str, count: int, *, conflicts: int = 0, revoked: int = 0) -> None:
    if count:
        AWARDS.labels(source=source).inc(count)
    if conflicts:
        AWARD_CONFLICTS.inc(conflicts)
    if revoked:
        REVOCATIONS.inc(revoked)


def record_notifications(channel: str, outcomes: Iterable[str]) -> None:
    for outcome in outcomes:
        NOTIFICATIONS.labels(channel=channel, outcome=outcome).inc()


def observe_batch(seconds: float) -> None:
    BATCH_SECONDS.observe(seconds)


def observe_event_ages(payloads: Iterable[Any], *, committed_at: datetime) -> None:
    """Observe ``occurred_at`` → commit for each payload that carries a readable ``occurred_at``."""
    for payload in payloads:
        occurred = payload.get("occurred_at") if isinstance(payload, dict) else None
        if not isinstance(occurred, str):
            continue
        try:
            when = datetime.fromisoformat(occurred.replace("Z", "+00:00"))
        except ValueError:
            continue
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        EVENT_AGE_SECONDS.observe(max(0.0, (committed_at - when).total_seconds()))


def serving_registry() -> CollectorRegistry:
    """What ``/metrics`` shows: the sum over all processes in multiprocess mode, else this one."""
    if not os.environ.get(MULTIPROC_ENV):
        return REGISTRY
    registry = CollectorRegistry()
    prometheus_multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    return registry


def serve(port: int, *, addr: str = "0.0.0.0") -> None:
    """Serve ``/metrics`` from a daemon thread of this process (the worker's main process)."""
    start_http_server(port, addr=addr, registry=serving_registry())
    log.info("worker metrics on http://%s:%d/metrics", addr, port)


def process_exited(pid: int) -> None:
    """Tidy the files of a pool process that exited (its counters stay counted)."""
    if os.environ.get(MULTIPROC_ENV):
        prometheus_multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]
