"""Prometheus metrics: API requests and awards, plus state read at scrape time.

Counters live in this process (requests, API awards).  Gauges that describe
the whole system (earned badges, outbox rows per state, broker queue depth)
are read from the database and the broker when ``/metrics`` is scraped, so
they are right whichever process did the work.  A part that cannot be read
is reported by ``badges_component_up`` instead of failing the scrape.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import func, select
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api import broker
from api.context import ApiContext
from schema.tables import earned_badges, notification_outbox, quarantined_events
from worker.core.clock import as_utc
from worker.observability.job_runs import JOBS, last_successes

log = logging.getLogger(__name__)

# ``*_created`` timestamp series double every counter's output and nobody graphs them.
disable_created_metrics()  # type: ignore[no-untyped-call]

# Process-wide counters, registered into each app's registry (never the global one,
# so creating several apps in one process - tests - cannot clash).
REQUESTS = Counter(
    "badges_api_requests",
    "HTTP requests handled by the API",
    ["method", "route", "status"],
    registry=None,
)
REQUEST_SECONDS = Histogram(
    "badges_api_request_duration_seconds",
    "Time to answer an API request",
    ["method", "route"],
    registry=None,
)
AWARDS = Counter(
    "badges_api_awards",
    "Awards requested through the API, by outcome (created or already earned)",
    ["outcome"],
    registry=None,
)


def record_award(*, created: bool) -> None:
    AWARDS.labels(outcome="created" if created else "existing").inc()


class SystemStateCollector(Collector):
    """Gauges read at scrape time from the database and the broker."""

    def __init__(self, context: ApiContext) -> None:
        self.context = context

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily(
            "badges_component_up",
            "1 if the part could be read for this scrape",
            labels=["component"],
        )
        try:
            yield from self._database()
            up.add_metric(["database"], 1)
        except Exception:
            log.warning("metrics: database unreadable", exc_info=True)
            up.add_metric(["database"], 0)
        try:
            yield self._queues()
            up.add_metric(["broker"], 1)
        except Exception:
            log.warning("metrics: broker unreadable", exc_info=True)
            up.add_metric(["broker"], 0)
        yield up

    def _database(self) -> list[Metric]:
        earned = GaugeMetricFamily(
            "badges_earned_badges",
            "Earned badges held, by how they were awarded",
            labels=["source"],
        )
        outbox = GaugeMetricFamily(
            "badges_outbox_rows",
            "Notification outbox rows by channel and state",
            labels=["channel", "state"],
        )
        with self.context.database.connect() as conn:
            for source, count in conn.execute(
                select(earned_badges.c.award_source, func.count()).group_by(
                    earned_badges.c.award_source
                )
            ):
                earned.add_metric([source], count)
            for channel, state, count in conn.execute(
                select(
                    notification_outbox.c.channel, notification_outbox.c.state, func.count()
                ).group_by(notification_outbox.c.channel, notification_outbox.c.state)
            ):
                outbox.add_metric([channel, state], count)
            extra = self._backlog(conn)
        return [earned, outbox, *extra]

    def _backlog(self, conn: Any) -> list[Metric]:
        """Outbox backlog and age, dead letters, quarantine size, periodic job successes."""
        now = self.context.clock.now()
        waiting = notification_outbox.c.state.in_(("pending", "failed"))
        count, oldest = conn.execute(
            select(func.count(), func.min(notification_outbox.c.created_at)).where(waiting)
        ).one()
        backlog = GaugeMetricFamily(
            "badges_outbox_backlog", "Outbox rows waiting for delivery (pending or failed)"
        )
        backlog.add_metric([], count)
        age = GaugeMetricFamily(
            "badges_outbox_oldest_pending_age_seconds",
            "Age of the oldest outbox row waiting for delivery (0 when none waits)",
        )
        age.add_metric([], (now - as_utc(oldest)).total_seconds() if oldest else 0.0)
        dead = GaugeMetricFamily(
            "badges_dead_letters", "Outbox rows that exhausted their attempts (state dead)"
        )
        dead.add_metric(
            [],
            conn.execute(
                select(func.count()).where(notification_outbox.c.state == "dead")
            ).scalar_one(),
        )
        quarantined = GaugeMetricFamily(
            "badges_quarantined_events", "Quarantined events not replayed yet"
        )
        quarantined.add_metric(
            [],
            conn.execute(
                select(func.count()).where(quarantined_events.c.replayed_at.is_(None))
            ).scalar_one(),
        )
        jobs = GaugeMetricFamily(
            "badges_job_last_success_timestamp_seconds",
            "Unix time of each periodic job's last successful run (0: never)",
            labels=["job"],
        )
        successes = last_successes(conn)
        for job in JOBS:
            at = successes.get(job)
            jobs.add_metric([job], as_utc(at).timestamp() if at else 0.0)
        return [backlog, age, dead, quarantined, jobs]

    def _queues(self) -> Metric:
        depth = GaugeMetricFamily(
            "badges_queue_depth", "Messages waiting in a broker queue", labels=["queue"]
        )
        for queue, count in broker.queue_depths().items():
            depth.add_metric([queue], count)
        return depth


def build_registry(context: ApiContext) -> CollectorRegistry:
    registry = CollectorRegistry()
    for collector in (REQUESTS, REQUEST_SECONDS, AWARDS, SystemStateCollector(context)):
        registry.register(collector)
    return registry


def render(registry: CollectorRegistry) -> bytes:
    return generate_latest(registry)


class RequestMetricsMiddleware:
    """Counts and times every HTTP request by method, route template and status."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route = _route_template(scope)
            REQUESTS.labels(scope["method"], route, str(status)).inc()
            REQUEST_SECONDS.labels(scope["method"], route).observe(time.perf_counter() - started)


def _route_template(scope: Scope) -> str:
    # The template, not the concrete path: ids would make unbounded label values.
    route: Any = scope.get("route")
    path = getattr(route, "path", None)
    return str(path) if path else "unmatched"
