"""Retroactive evaluation on PostgreSQL, after a history ingested through a real worker.

The history goes through ``badges.ingest_activity`` under an old
configuration; then ``badges definitions apply`` adds two badges, lowers a
threshold, enables a disabled badge, makes a revocable and a non-revocable
badge stricter, disables one and leaves one alone.  What the mentors hold
afterwards is compared with an independent recomputation from the raw
history (plain Python here, none of the worker's code), and the dry run
before it must print the same figures and write nothing.
"""

from __future__ import annotations

import random
import re
import uuid
from collections import Counter
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import Engine, func, select

from schema.tables import (
    badge_audit,
    badge_definitions,
    earned_badges,
    notification_outbox,
    notifications,
    tier_assignments,
)
from tests.helpers import saved_event, streak, threshold, wait_for
from tests.integration.harness import WorkerProcess, processed_count
from worker.cli import main
from worker.tasks.publishing import publish

MENTORS = 14
FIRST_MONDAY = date(2026, 1, 5)


def history(org: uuid.UUID, mentors: list[uuid.UUID]) -> list[tuple[uuid.UUID, str, date]]:
    """(mentor, activity type, date): calls on random weeks, a few sessions, some courses."""
    rng = random.Random(13)
    facts = []
    for i, mentor in enumerate(mentors):
        calls = [0, 2, 5, 9, 11, 12, 13, 18, 24, 25, 26, 30, 30, 7][i]
        for week in sorted(rng.sample(range(40), calls)):
            facts.append((mentor, "phone_call", FIRST_MONDAY + timedelta(weeks=week, days=i % 5)))
        for _ in range(rng.randint(0, 8)):
            facts.append(
                (mentor, "peer_session", FIRST_MONDAY + timedelta(days=rng.randint(0, 280)))
            )
        if rng.random() < 0.3:
            facts.append((mentor, "training_completed", FIRST_MONDAY + timedelta(days=3)))
    return facts


# --- the independent model -----------------------------------------------------------


def longest_weekly_run(days: list[date]) -> int:
    weeks = sorted({d.toordinal() // 7 for d in days})
    best = run = 0
    for i, w in enumerate(weeks):
        run = run + 1 if i and w == weeks[i - 1] + 1 else 1
        best = max(best, run)
    return best


def meets(criteria: dict[str, Any], facts: list[tuple[str, date]]) -> bool:
    kind = criteria["type"]
    if kind == "threshold":
        types = set(criteria["activity_types"])
        return sum(1 for t, _ in facts if not types or t in types) >= int(criteria["min_count"])
    if kind == "streak":
        types = set(criteria["activity_types"])
        days = [d for t, d in facts if not types or t in types]
        return longest_weekly_run(days) >= int(criteria["min_length"])
    if kind == "training_completion":
        return any(t == "training_completed" for t, _ in facts)  # one course, c1
    if kind == "any_of":
        return any(meets(c, facts) for c in criteria["criteria"])
    raise AssertionError(kind)


def course() -> dict[str, Any]:
    return {"type": "training_completion", "version": 1, "course_ids": ["c1"]}


def configuration(org: uuid.UUID, *, final: bool) -> dict[str, Any]:
    o = str(org)

    def b(code: str, criteria: dict[str, Any], **extra: Any) -> dict[str, Any]:
        return {"organisation_id": o, "code": code, "name": code, "criteria": criteria, **extra}

    comeback = {
        "type": "any_of",
        "version": 1,
        "criteria": [threshold(6, "peer_session"), course()],
    }
    badges = [
        b("calls", threshold(12 if final else 25, "phone_call")),
        b("comeback", comeback, enabled=final),
        b("steady", streak("week", 6 if final else 3, "phone_call"), revocable=True),
        b("loyal", threshold(25 if final else 3)),
        b("kept", threshold(1)),
        b("off", threshold(1 if final else 20, "phone_call"), enabled=not final),
    ]
    if final:
        badges += [
            b("five-sessions", threshold(5, "peer_session")),
            b("phone-fortnight", streak("week", 2, "phone_call")),
        ]
    return {"organisations": [{"id": o, "name": "Retro"}], "badges": badges}


# --- reading the database ---------------------------------------------------------------


def holders(engine: Engine, org: uuid.UUID) -> dict[str, set[uuid.UUID]]:
    with engine.connect() as c:
        rows = c.execute(
            select(badge_definitions.c.code, earned_badges.c.peer_mentor_id)
            .join(badge_definitions, badge_definitions.c.id == earned_badges.c.badge_definition_id)
            .where(earned_badges.c.organisation_id == org)
        ).all()
    result: dict[str, set[uuid.UUID]] = {}
    for code, mentor in rows:
        result.setdefault(code, set()).add(mentor)
    return result


def row_counts(engine: Engine, org: uuid.UUID) -> dict[str, int]:
    with engine.connect() as c:
        return {
            t.name: int(
                c.execute(
                    select(func.count()).select_from(t).where(t.c.organisation_id == org)
                ).scalar_one()
            )
            for t in (
                badge_definitions, earned_badges, badge_audit, notification_outbox,
                notifications, tier_assignments,
            )
        }  # fmt: skip


def printed(output: str) -> dict[str, tuple[int, int | None]]:
    """``badge CODE: N mentor(s) [would newly earn|newly earned] it[, M [would lose|lost] it]``."""
    found = {}
    for line in output.splitlines():
        match = re.match(r"badge (\S+): (\d+) mentor\(s\) [a-z ]+ it(?:, (\d+) [a-z ]+ it)?$", line)
        if match:
            lost = None if match[3] is None else int(match[3])
            found[match[1]] = (int(match[2]), lost)
    return found


def write(tmp_path: Path, data: dict[str, Any]) -> Path:
    path = tmp_path / f"config-{uuid.uuid4().hex[:6]}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_a_config_change_reaches_every_mentor_who_already_qualifies(
    clean_db: Engine, worker: WorkerProcess, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    engine = clean_db
    org = uuid.uuid4()
    mentors = sorted(uuid.uuid4() for _ in range(MENTORS))
    assert (
        main(["definitions", "apply", str(write(tmp_path, configuration(org, final=False)))]) == 0
    )
    capsys.readouterr()
    facts = history(org, mentors)
    events = [
        saved_event(
            org=org, mentor=m, activity_type=t, day=d,
            course_id="c1" if t == "training_completed" else None,
        )
        for m, t, d in facts
    ]  # fmt: skip
    publish(events)
    ids = [uuid.UUID(e["event_id"]) for e in events]

    def processed() -> int:
        return processed_count(engine, ids)

    wait_for(processed, until=lambda n: n == len(ids), timeout=180, what="the history ingested")
    wait_for(
        lambda: row_counts(engine, org),
        # No push gateway anywhere in this test: one (in-app) outbox row per notification.
        until=lambda n: n["notifications"] == n["notification_outbox"],
        timeout=120,
        what="in-app notifications of the live awards delivered",
    )
    before = holders(engine, org)
    untouched = row_counts(engine, org)

    final = configuration(org, final=True)
    path = write(tmp_path, final)
    assert main(["definitions", "apply", str(path), "--dry-run"]) == 0
    dry = printed(capsys.readouterr().out)
    assert row_counts(engine, org) == untouched  # the dry run wrote nothing
    assert holders(engine, org) == before

    assert main(["definitions", "apply", str(path)]) == 0
    real = printed(capsys.readouterr().out)
    after = holders(engine, org)

    by_mentor: dict[uuid.UUID, list[tuple[str, date]]] = {m: [] for m in mentors}
    for m, t, d in facts:
        by_mentor[m].append((t, d))
    revocable = {b["code"] for b in final["badges"] if b.get("revocable")}
    for b in final["badges"]:
        code, held = b["code"], before.get(b["code"], set())
        if b.get("enabled", True) is False or code == "kept":
            assert after.get(code, set()) == held, code  # disabled or unchanged: nothing
            continue
        qualify = {m for m in mentors if meets(b["criteria"], by_mentor[m])}
        expected = qualify if code in revocable else qualify | held
        assert after.get(code, set()) == expected, code
    # The figures printed are the differences, and the dry run printed the same.
    changed = {"calls", "comeback", "steady", "loyal", "five-sessions", "phone-fortnight"}
    assert set(real) == changed
    for code in changed:
        gained = len(after.get(code, set()) - before.get(code, set()))
        lost = len(before.get(code, set()) - after.get(code, set()))
        assert real[code] == (gained, lost if code in revocable else None), code
    assert dry == real
    assert real["steady"][1], "the stricter revocable badge revoked somebody"
    assert real["loyal"][0] == 0 and after["loyal"] >= before["loyal"]
    new_awards = sum(n for n, _ in real.values())
    assert new_awards >= 20

    with engine.connect() as c:
        audit = Counter(
            (action, code)
            for action, code in c.execute(
                select(badge_audit.c.action, badge_definitions.c.code)
                .join(
                    badge_definitions, badge_definitions.c.id == badge_audit.c.badge_definition_id
                )
                .where(badge_audit.c.organisation_id == org)
            ).all()
        )
        sources = Counter(
            c.scalars(
                select(earned_badges.c.award_source).where(earned_badges.c.organisation_id == org)
            )
        )
        backfill_ids = set(
            c.scalars(
                select(earned_badges.c.id).where(
                    earned_badges.c.organisation_id == org,
                    earned_badges.c.award_source == "backfill",
                )
            )
        )
    assert {code for action, code in audit if action == "revoked"} == {"steady"}
    assert audit[("revoked", "steady")] == real["steady"][1]
    assert sum(n for (action, _), n in audit.items() if action == "backfill_award") == new_awards
    assert sources["backfill"] == new_awards == len(backfill_ids)

    def backfill_outbox() -> list[tuple[str, str]]:
        with engine.connect() as c:
            rows = c.execute(
                select(
                    notification_outbox.c.channel, notification_outbox.c.state,
                    notification_outbox.c.payload,
                ).where(notification_outbox.c.organisation_id == org,
                        notification_outbox.c.backfill.is_(True))
            ).all()  # fmt: skip
        assert {uuid.UUID(p["earned_badge_id"]) for _, _, p in rows} == backfill_ids
        return sorted((channel, state) for channel, state, _ in rows)

    # One in-app notification per new award, delivered by the worker; no push row
    # (the push channel is disabled; with it on, the push row is written skipped).
    wait_for(
        backfill_outbox,
        until=lambda rows: rows == [("in_app", "sent")] * new_awards,
        timeout=120,
        what="the backfill awards' in-app notifications delivered",
    )
    with engine.connect() as c:
        delivered = list(
            c.scalars(
                select(notifications.c.payload).where(
                    notifications.c.organisation_id == org, notifications.c.kind == "badge_earned"
                )
            )
        )
    assert sorted(
        uuid.UUID(p["earned_badge_id"])
        for p in delivered
        if uuid.UUID(p["earned_badge_id"]) in backfill_ids
    ) == sorted(backfill_ids)

    # Applying the same file again evaluates nothing.
    assert main(["definitions", "apply", str(path)]) == 0
    assert printed(capsys.readouterr().out) == {}
    assert holders(engine, org) == after
