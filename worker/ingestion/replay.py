"""Replaying quarantined events: list them, feed them through ingestion again.

An event is quarantined when it breaks the contract or names an
organisation that is not configured yet; once the cause is fixed (say the
organisation was added), replay puts it through :func:`ingest_events` like
a fresh message.  Replay is idempotent: a replayed row is marked
(``replayed_at``) and never picked again, and the pipeline itself ignores an
event id it already processed.  An event that still fails keeps its row,
unmarked, with the new reason, so the next replay tries it again.

Everything happens in the caller's transaction; rows being replayed are
locked (``FOR UPDATE SKIP LOCKED`` on PostgreSQL), so two operators
replaying at once never process a row twice.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import Connection, select, update

from schema.tables import organisations, quarantined_events
from worker.core.clock import Clock
from worker.ingestion.ingest import IncomingEvent, IngestResult, ingest_events
from worker.model.events import InvalidEvent, parse_event


@dataclass(frozen=True)
class QuarantinedEvent:
    id: int
    event_id: str | None
    task_id: str | None
    reason: str
    raw_payload: str
    quarantined_at: datetime
    replayed_at: datetime | None

    @property
    def payload(self) -> Any:
        """The payload as JSON when it parses, else the raw text."""
        try:
            return json.loads(self.raw_payload)
        except ValueError:
            return self.raw_payload


@dataclass
class ReplayReport:
    replayed: list[int] = field(default_factory=list)
    still_failing: dict[int, str] = field(default_factory=dict)
    result: IngestResult = field(default_factory=IngestResult)


def list_quarantined(
    conn: Connection, *, pending_only: bool = False, limit: int | None = None
) -> list[QuarantinedEvent]:
    query = select(quarantined_events).order_by(quarantined_events.c.id)
    if pending_only:
        query = query.where(quarantined_events.c.replayed_at.is_(None))
    if limit is not None:
        query = query.limit(limit)
    return [_row(r) for r in conn.execute(query)]


def existing_ids(conn: Connection, ids: Sequence[int]) -> set[int]:
    return set(
        conn.scalars(select(quarantined_events.c.id).where(quarantined_events.c.id.in_(ids)))
    )


def replay_quarantined(
    conn: Connection, *, ids: Sequence[int] | None, clock: Clock
) -> ReplayReport:
    """Replay the not-yet-replayed rows among ``ids`` (all of them when ``ids`` is None)."""
    now = clock.now()
    query = (
        select(quarantined_events)
        .where(quarantined_events.c.replayed_at.is_(None))
        .order_by(quarantined_events.c.id)
        .with_for_update(skip_locked=True)
    )
    if ids is not None:
        query = query.where(quarantined_events.c.id.in_(list(ids)))
    rows = [_row(r) for r in conn.execute(query)]
    report = ReplayReport()
    ready: list[tuple[QuarantinedEvent, Any]] = []
    for row in rows:
        payload, reason = _parse(row)
        if reason is not None:
            report.still_failing[row.id] = reason
        else:
            ready.append((row, payload))
    known = _known_organisations(conn, [p for _, p in ready])
    valid: list[tuple[QuarantinedEvent, Any]] = []
    for row, payload in ready:
        org = UUID(payload["activity"]["organisation_id"])
        if org in known:
            valid.append((row, payload))
        else:
            report.still_failing[row.id] = f"activity.organisation_id: unknown organisation {org}"
    _ingest(conn, valid, clock=clock, report=report)
    if report.replayed:
        conn.execute(
            update(quarantined_events)
            .where(quarantined_events.c.id.in_(report.replayed))
            .values(replayed_at=now)
        )
    for row_id, reason in report.still_failing.items():
        conn.execute(
            update(quarantined_events)
            .where(quarantined_events.c.id == row_id)
            .values(reason=reason[:2000])
        )
    return report


def _ingest(
    conn: Connection,
    valid: list[tuple[QuarantinedEvent, Any]],
    *,
    clock: Clock,
    report: ReplayReport,
) -> None:
    """All valid events in one go; if that fails, one by one (each in its own savepoint)."""
    if not valid:
        return
    try:
        with conn.begin_nested():
            result = ingest_events(
                conn, [IncomingEvent(p, row.task_id) for row, p in valid], clock=clock
            )
    except Exception as exc:
        if len(valid) == 1:
            report.still_failing[valid[0][0].id] = _failure(exc)
            return
    else:
        report.result.merge(result)
        report.replayed += [row.id for row, _ in valid]
        return
    for row, payload in valid:
        try:
            with conn.begin_nested():
                result = ingest_events(conn, [IncomingEvent(payload, row.task_id)], clock=clock)
        except Exception as exc:
            report.still_failing[row.id] = _failure(exc)
            continue
        report.result.merge(result)
        report.replayed.append(row.id)


def _failure(exc: Exception) -> str:
    return f"processing failed: {type(exc).__name__}: {exc}"


def _parse(row: QuarantinedEvent) -> tuple[Any, str | None]:
    try:
        payload = json.loads(row.raw_payload)
    except ValueError as exc:
        return None, f"not JSON: {exc}"
    try:
        parse_event(payload)
    except InvalidEvent as exc:
        return None, exc.reason
    return payload, None


def _known_organisations(conn: Connection, payloads: list[Any]) -> set[UUID]:
    wanted = {UUID(p["activity"]["organisation_id"]) for p in payloads}
    if not wanted:
        return set()
    return set(conn.scalars(select(organisations.c.id).where(organisations.c.id.in_(wanted))))


def _row(r: Any) -> QuarantinedEvent:
    return QuarantinedEvent(
        id=int(r.id),
        event_id=r.event_id,
        task_id=r.task_id,
        reason=r.reason,
        raw_payload=r.raw_payload,
        quarantined_at=r.received_at,
        replayed_at=r.replayed_at,
    )
