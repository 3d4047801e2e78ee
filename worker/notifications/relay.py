"""The outbox relay: find outbox rows whose delivery task never got out, and claim them.

Normally ``worker.notifications.dispatch`` sends a delivery task right after the award
transaction commits and stamps ``dispatched_at``.  If the process died in
between (or the broker refused the message), the row stays ``pending`` with
no recent ``dispatched_at``.  The relay, run periodically from celery beat,
claims such rows once a grace period has passed and sends them after its commit.

Also claimed: ``failed`` rows whose scheduled retry is overdue (no change for
longer than the longest retry countdown plus the grace period), in case the
retry message itself was lost.

Several relays may run at once: rows are claimed with ``FOR UPDATE SKIP
LOCKED`` and stamped ``dispatched_at`` in the same transaction, so a second
relay neither waits for nor re-claims them.  On SQLite (no ``FOR UPDATE``)
``BEGIN IMMEDIATE`` already serialises the two.  A duplicate send is harmless
anyway: every delivery task is idempotent on its outbox id.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import Connection, and_, func, or_, select, update

from schema.tables import notification_outbox
from worker.notifications.dispatch import dispatch_after_commit
from worker.notifications.types import Channel, OutboxRef, OutboxState

#: Rows claimed per transaction; the task loops while batches come back full.
DEFAULT_BATCH_SIZE = 500


def claim_undispatched(
    conn: Connection,
    *,
    now: datetime,
    grace_period_s: float,
    retry_overdue_s: float,
    limit: int = DEFAULT_BATCH_SIZE,
) -> list[OutboxRef]:
    """Claim up to ``limit`` rows to re-send (see module docstring), oldest first.

    The claimed rows are sent once the caller's unit of work commits.

    ``retry_overdue_s`` is how long a ``failed`` row may go unchanged before
    its retry counts as lost (the longest retry countdown plus some slack).
    """
    t = notification_outbox.c
    last_sent = func.coalesce(t.dispatched_at, t.created_at)
    grace_cutoff = now - timedelta(seconds=grace_period_s)
    retry_cutoff = now - timedelta(seconds=retry_overdue_s)
    rows = conn.execute(
        select(t.id, t.channel)
        .where(
            or_(
                and_(t.state == OutboxState.PENDING.value, last_sent <= grace_cutoff),
                and_(
                    t.state == OutboxState.FAILED.value,
                    t.updated_at <= retry_cutoff,
                    last_sent <= grace_cutoff,
                ),
            )
        )
        .order_by(t.created_at, t.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    ).all()
    refs = [OutboxRef(row.id, Channel(row.channel)) for row in rows]
    if refs:
        conn.execute(
            update(notification_outbox)
            .where(t.id.in_([r.id for r in refs]))
            .values(dispatched_at=now)
        )
    dispatch_after_commit(conn, refs)
    return refs
