"""A batch of events in at most two short units of work, so batches do not convoy.

Every event is applied while its mentor's advisory lock is held, which is
what keeps stats, awards and outbox rows exactly once when two workers see
events of the same mentor.  Taking (and waiting for) all of a batch's mentor
locks up front made a worker wait for a whole batch of another worker as soon
as the two batches shared one mentor, and the other worker's next batch then
waited for this one: a lock convoy, where a second worker adds waiting rather
than throughput.

So a batch is applied in two steps:

1. one unit of work try-locks all of the batch's mentors at once
   (``pg_try_advisory_xact_lock``, never waiting) and applies the events of
   the mentors it got; the events of mentors another transaction holds are
   left untouched;
2. if any were left, a second unit of work waits for just those mentors'
   locks (sorted, like every waiting lock: no deadlock) and applies their
   events.  Its transaction is short: few events, and the locks it waits for
   are held by transactions that never wait while holding them in step 1.

An event belongs to exactly one of the two steps (events are split by
mentor, so the events of one mentor keep their batch order), and each step
is the ordinary ingestion unit of work: event ids are recorded under the
mentor's lock, so a redelivered message (e.g. the worker died between the
two commits) finds the first step's events already recorded and applies only
the rest.  Notifications of each step are dispatched after its own commit.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Engine

from worker.core.clock import Clock
from worker.db.unit_of_work import unit_of_work
from worker.ingestion.ingest import IncomingEvent, IngestResult, ingest_events


def ingest_batch(
    engine: Engine | None, incoming: Sequence[IncomingEvent], *, clock: Clock
) -> IngestResult:
    """Apply a batch (see the module docstring); ``engine`` None: the worker's engine.

    The result adds both steps up; ``received`` counts each event once and
    ``deferred`` lists the events that needed the second step.
    """
    with unit_of_work(engine) as conn:
        result = ingest_events(conn, incoming, clock=clock, wait_for_locks=False)
    if not result.deferred:
        return result
    with unit_of_work(engine) as conn:
        rest = ingest_events(conn, result.deferred, clock=clock)
    rest.received = 0  # counted by the first step already
    result.merge(rest)
    return result
