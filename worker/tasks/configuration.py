"""``badges.evaluate_definitions``: bring existing mentors up to date after a config write.

The API's configuration routes commit the change and enqueue this task on
queue ``maintenance`` (celeryconfig routes it), with the definitions that
were created, enabled or whose criteria changed, and the organisations whose
tiers or award periods changed.  The work is what ``badges definitions
apply`` does before it returns (``worker.configuration.followup``).  It is
idempotent (awards are unique per definition and mentor, a tier only ever
goes up), so a redelivered message awards nothing twice.
"""

from __future__ import annotations

import logging
from typing import Any
from uuid import UUID

from worker.app import app
from worker.core.clock import SystemClock
from worker.core.models import FrozenModel
from worker.db.engine import get_engine
from worker.tasks.common import parse_message

log = logging.getLogger(__name__)

TASK_NAME = "badges.evaluate_definitions"


class EvaluateDefinitionsMessage(FrozenModel):
    """Keyword arguments of ``badges.evaluate_definitions``."""

    definition_ids: tuple[UUID, ...] = ()
    tier_organisation_ids: tuple[UUID, ...] = ()


@app.task(name=TASK_NAME)
def evaluate_definitions_task(*args: Any, **kwargs: Any) -> dict[str, Any]:
    """Re-evaluate the organisations' tiers, then every mentor against the definitions."""
    from worker.configuration.followup import evaluate_changed, reevaluate_organisation_tiers

    message = parse_message(TASK_NAME, EvaluateDefinitionsMessage, args, kwargs)
    if message is None:
        return {"invalid": True}
    engine, clock = get_engine(), SystemClock()
    promotions = 0
    for org in message.tier_organisation_ids:
        promotions += len(reevaluate_organisation_tiers(engine, org, clock=clock))
    counts = evaluate_changed(engine, message.definition_ids, clock=clock)
    log.info(
        "%s: %s; %d tier promotion(s)",
        TASK_NAME,
        ", ".join(f"{c.code} +{c.newly_earned} -{c.lost}" for c in counts) or "no badges",
        promotions,
    )
    return {
        "promotions": promotions,
        "badges": {str(c.definition_id): [c.newly_earned, c.lost] for c in counts},
    }


def enqueue_evaluation(definition_ids: list[UUID], tier_organisation_ids: list[UUID]) -> bool:
    """Send the task (after the configuration committed); False when nothing to do."""
    if not definition_ids and not tier_organisation_ids:
        return False
    app.send_task(
        TASK_NAME,
        kwargs={
            "definition_ids": [str(i) for i in definition_ids],
            "tier_organisation_ids": [str(i) for i in tier_organisation_ids],
        },
    )
    return True
