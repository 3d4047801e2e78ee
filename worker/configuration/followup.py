"""Applying configuration, then bringing existing mentors up to date with it.

``badges definitions apply`` (and the API's badge-definitions writes) change
what mentors *should* hold: a new badge, a lowered threshold, a re-enabled
definition, a new tier threshold.  After the configuration committed:

1. tiers: each organisation whose tiers or award periods changed gets a full
   tier re-evaluation of its active periods, under the usual rules
   (promotions only, the highest tier is kept), holding the tier job's lock;
2. badges: every definition the file created, enabled or whose criteria it
   changed is evaluated for every mentor of its organisation, a chunk of
   mentors per transaction (:mod:`worker.badges.retroactive`: backfill
   awards, in-app only, sent as each chunk commits).

Tiers come first so that a badge with a ``tier`` criterion sees the new
tiers.  A dry run applies the file in a transaction that is rolled back and
counts, in that same transaction, what step 2 would award and revoke.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from sqlalchemy import Connection, Engine

from worker.badges import retroactive
from worker.badges.awards import BadgeDefinition, EarnedBadge
from worker.badges.retroactive import CHUNK, BadgeCounts, evaluate_chunk, organisation_mentors
from worker.configuration.apply import ApplyReport, apply_configuration
from worker.configuration.schema import Configuration
from worker.core.clock import Clock
from worker.db.locks import lock_job
from worker.db.quiesce import wait_for_running_transactions
from worker.db.unit_of_work import unit_of_work
from worker.model.tiers import Promotion
from worker.notifications.outbox import notify_awards
from worker.notifications.types import OutboxRef
from worker.tiers.reevaluation import JOB_NAME, reevaluate_tiers

#: Start a progress bar from the number of mentors; it receives each chunk's size.
ProgressFactory = Callable[[int], Callable[[int], Any]]


@dataclass
class ApplyOutcome:
    report: ApplyReport
    dry_run: bool
    badges: list[BadgeCounts] = field(default_factory=list)
    promotions: dict[UUID, list[Promotion]] = field(default_factory=dict)


def preview_configuration(
    conn: Connection, config: Configuration, clock: Clock
) -> tuple[ApplyReport, list[BadgeCounts]]:
    """Apply ``config`` in the caller's transaction and count what evaluation would do.

    The caller rolls the transaction back (a dry run); nothing is awarded.
    """
    report = apply_configuration(conn, config, clock)
    definitions = retroactive.load_definitions(conn, report.evaluate_definitions)
    return report, retroactive.preview(conn, definitions)


def apply_and_evaluate(
    engine: Engine,
    config: Configuration,
    *,
    clock: Clock,
    dry_run: bool = False,
    progress: ProgressFactory | None = None,
) -> ApplyOutcome:
    """Apply ``config``, then re-evaluate tiers and the changed definitions (see module doc).

    ``progress`` starts a progress bar for the badge evaluation.
    """
    if dry_run:
        with engine.connect() as conn:
            transaction = conn.begin()
            try:
                report, counts = preview_configuration(conn, config, clock)
            finally:
                transaction.rollback()
        return ApplyOutcome(report, dry_run=True, badges=counts)
    with unit_of_work(engine) as conn:
        report = apply_configuration(conn, config, clock)
    outcome = ApplyOutcome(report, dry_run=False)
    for org in report.tier_organisations:
        outcome.promotions[org] = reevaluate_organisation_tiers(engine, org, clock=clock)
    outcome.badges = evaluate_changed(
        engine, report.evaluate_definitions, clock=clock, progress=progress
    )
    return outcome


def evaluate_changed(
    engine: Engine,
    definition_ids: tuple[UUID, ...] | list[UUID],
    *,
    clock: Clock,
    progress: ProgressFactory | None = None,
) -> list[BadgeCounts]:
    """Retroactive evaluation of committed definitions (shared by the CLI and the task)."""
    if not definition_ids:
        return []
    work = plan(engine, definition_ids)
    update = progress(work.mentor_count) if progress is not None else None
    return run_plan(engine, work, clock=clock, progress=update).badges


def reevaluate_organisation_tiers(
    engine: Engine,
    organisation_id: UUID,
    *,
    clock: Clock,
) -> list[Promotion]:
    """A full tier re-evaluation of one organisation's active periods, now.

    Waits for the periodic job's lock instead of skipping: the change must be
    reflected when the command returns.
    """
    with unit_of_work(engine) as conn:
        lock_job(conn, JOB_NAME)
        run = reevaluate_tiers(conn, clock=clock, organisation_id=organisation_id, full=True)
    return run.promotions


@dataclass
class RetroReport:
    badges: list[BadgeCounts] = field(default_factory=list)
    mentors: int = 0
    awarded: list[EarnedBadge] = field(default_factory=list)
    outbox: list[OutboxRef] = field(default_factory=list)


@dataclass
class Plan:
    """What :func:`run_plan` will evaluate: definitions and mentors per organisation."""

    definitions: dict[UUID, list[BadgeDefinition]]
    mentors: dict[UUID, list[UUID]]

    @property
    def mentor_count(self) -> int:
        return sum(len(m) for m in self.mentors.values())


def plan(engine: Engine, definition_ids: Collection[UUID], *, wait_timeout: float = 60.0) -> Plan:
    """Wait for running transactions, then list the definitions and mentors to evaluate."""
    wait_for_running_transactions(engine, timeout=wait_timeout)
    with engine.connect() as conn:
        by_org: dict[UUID, list[BadgeDefinition]] = {}
        for d in retroactive.load_definitions(conn, definition_ids):
            by_org.setdefault(d.organisation_id, []).append(d)
        members = {org: organisation_mentors(conn, org, ds) for org, ds in by_org.items()}
        conn.rollback()
    return Plan(by_org, members)


def run_plan(
    engine: Engine,
    work: Plan,
    *,
    clock: Clock,
    chunk_size: int = CHUNK,
    progress: Callable[[int], Any] | None = None,
) -> RetroReport:
    """Evaluate the plan a chunk of mentors per committed transaction.

    ``progress`` receives the number of mentors each committed chunk covered.
    Each chunk's in-app notifications are sent once it committed.
    """
    report = RetroReport(mentors=work.mentor_count)
    counts = {
        d.id: BadgeCounts(d.id, d.organisation_id, d.code, d.revocable)
        for ds in work.definitions.values()
        for d in ds
    }
    report.badges = list(counts.values())
    for org, definitions in work.definitions.items():
        ids = work.mentors[org]
        for start in range(0, len(ids), chunk_size):
            chunk = ids[start : start + chunk_size]
            with unit_of_work(engine) as conn:
                now = clock.now()
                awarded, revoked = evaluate_chunk(conn, definitions, chunk, now=now)
                refs = notify_awards(conn, awarded, now=now, backfill=True)
            for earned in awarded:
                counts[earned.badge_definition_id].newly_earned += 1
            for definition_id, n in revoked:
                counts[definition_id].lost += n
            report.awarded += awarded
            report.outbox += refs
            if progress is not None:
                progress(len(chunk))
    return report


def evaluate_definitions(
    engine: Engine,
    definition_ids: Collection[UUID],
    *,
    clock: Clock,
    chunk_size: int = CHUNK,
) -> RetroReport:
    """Evaluate every mentor of their organisations against ``definition_ids`` (committed)."""
    return run_plan(engine, plan(engine, definition_ids), clock=clock, chunk_size=chunk_size)
