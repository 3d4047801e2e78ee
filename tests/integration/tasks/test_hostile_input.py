"""Malformed and hostile messages through a real worker: quarantined, never fatal to good ones."""

from __future__ import annotations

import base64
import json
import pickle
import uuid
from datetime import date, timedelta
from typing import Any

import redis
from sqlalchemy import Engine, select

from schema.tables import quarantined_events
from tests.helpers import event_variant, saved_event, wait_for
from tests.integration.harness import WorkerProcess, apply, lifetime_total, organisation
from worker.app import app
from worker.model.events import TASK_NAME

MAX_RAW = 65536


def envelope(body: bytes, *, queue: str, content_type: str = "application/json") -> tuple[str, str]:
    """A Celery protocol 2 message as any producer would LPUSH it, with a body of our choosing."""
    task_id = str(uuid.uuid4())
    message = {
        "body": base64.b64encode(body).decode(),
        "content-encoding": "utf-8",
        "content-type": content_type,
        "headers": {
            "lang": "js",
            "task": TASK_NAME,
            "id": task_id,
            "root_id": task_id,
            "parent_id": None,
            "group": None,
            "retries": 0,
            "eta": None,
            "expires": None,
        },
        "properties": {
            "correlation_id": task_id,
            "delivery_mode": 2,
            "delivery_info": {"exchange": "", "routing_key": queue},
            "priority": 0,
            "body_encoding": "base64",
            "delivery_tag": str(uuid.uuid4()),
        },
    }
    return task_id, json.dumps(message)


def call_body(event_json: str, *, args: str = "[]") -> bytes:
    return f'[{args}, {{"event": {event_json}}}, {{}}]'.encode()


def hostile_bodies(org: uuid.UUID, mentor: uuid.UUID) -> dict[str, tuple[bytes, str]]:
    """Kind -> (message body, content type): each breaks the contract in its own way."""

    def event(**changes: Any) -> dict[str, Any]:
        return event_variant(org, mentor, **changes)

    def js(value: Any) -> str:
        return json.dumps(value)

    good_json = js(event())
    deep = "[" * 500 + "]" * 500
    missing = event()
    del missing["activity"]["activity_date"]
    json_ct = "application/json"
    return {
        "deep nesting": (call_body(good_json.replace('"course_id": null', f'"course_id": {deep}')), json_ct),
        "deeper than the parser": (call_body("[" * 100_000 + "]" * 100_000), json_ct),
        "multi-megabyte payload": (call_body(js(event(a_course_id="x" * 5_000_000))), json_ct),
        "NaN": (call_body(good_json.replace('"schema_version": 1', '"schema_version": NaN')), json_ct),
        "Infinity": (call_body(good_json.replace('"schema_version": 1', '"schema_version": Infinity')), json_ct),
        "event is a list": (call_body('["just", "a", "list"]'), json_ct),
        "event is null": (call_body("null"), json_ct),
        "event is a string": (call_body('"{not json"'), json_ct),
        "positional args": (call_body(good_json, args=f"[{good_json}]"), json_ct),
        "extra keyword": (f'[[], {{"event": {good_json}, "x": 1}}, {{}}]'.encode(), json_ct),
        "no keywords": (b"[[], {}, {}]", json_ct),
        "body is an object": (good_json.encode(), json_ct),
        "body is null": (b"null", json_ct),
        "broken JSON": (b'[[], {"event": {"event_id": ', json_ct),
        "invalid UTF-8": (call_body(good_json).replace(b"peer_session", b"peer_\xff\xfe"), json_ct),
        "pickle": (pickle.dumps(((), {"event": event()}, {})), "application/x-python-serialize"),
        "yaml": (b"- []\n- {event: {}}\n- {}\n", "application/x-yaml"),
        "schema version": (call_body(js(event(schema_version=7))), json_ct),
        "unknown field": (call_body(js(event(priority="high"))), json_ct),
        "bad event id": (call_body(js(event(event_id="abc"))), json_ct),
        "missing date": (call_body(js(missing)), json_ct),
        "naive timestamp": (call_body(js(event(occurred_at="2026-03-02T10:00:00"))), json_ct),
        "unknown organisation": (call_body(js(saved_event(org=uuid.uuid4(), mentor=mentor))), json_ct),
        "huge number": (call_body(good_json.replace('"schema_version": 1', '"schema_version": 1e999')), json_ct),
    }  # fmt: skip


def test_every_hostile_message_is_quarantined_and_every_good_one_applied(engine: Engine) -> None:
    org, mentor = uuid.uuid4(), uuid.uuid4()
    apply(engine, {"organisations": [organisation(org)]})
    queue = f"hostile-{uuid.uuid4().hex[:8]}"
    client = redis.Redis.from_url(app.conf.broker_url)
    kinds = hostile_bodies(org, mentor)
    good = [
        saved_event(org=org, mentor=mentor, day=date(2026, 1, 1) + timedelta(days=i))
        for i in range(len(kinds) + 1)
    ]
    # Published before the worker starts, so bad and good share batches.
    bad_ids: dict[str, str] = {}
    with app.producer_or_acquire() as producer:
        for (kind, (body, content_type)), ok in zip(kinds.items(), good, strict=False):
            task_id, raw = envelope(body, queue=queue, content_type=content_type)
            client.lpush(queue, raw)
            bad_ids[task_id] = kind
            app.send_task(TASK_NAME, kwargs={"event": ok}, queue=queue, producer=producer)
    worker = WorkerProcess(concurrency=1, queues=queue)
    try:
        rows = wait_for(
            lambda: _quarantined(engine, list(bad_ids)),
            until=lambda r: len(r) == len(kinds),
            timeout=120,
            what="every hostile message quarantined",
        )
        wait_for(
            lambda: lifetime_total(engine, mentor), until=lambda n: n == len(kinds), what="good"
        )
        # The worker is alive and still consuming after all of them.
        app.send_task(TASK_NAME, kwargs={"event": good[-1]}, queue=queue)
        wait_for(
            lambda: lifetime_total(engine, mentor), until=lambda n: n == len(good), what="last"
        )
        wait_for(
            lambda: client.hlen("unacked"), until=lambda n: n == 0, what="nothing left unacked"
        )
        assert worker.process.poll() is None
    finally:
        worker.stop()
    reasons = {bad_ids[r.task_id]: r for r in rows}
    assert set(reasons) == set(kinds)
    for kind, row in reasons.items():
        assert row.reason, kind
        assert len(row.raw_payload.encode()) <= MAX_RAW, kind
    expected = {
        "deep nesting": "course_id",
        "multi-megabyte payload": "raw payload truncated: first 65536 of",
        "NaN": "unsupported schema version nan",
        "positional args": "no positional arguments",
        "broken JSON": "could not be decoded",
        "invalid UTF-8": "could not be decoded",
        "pickle": "could not be decoded (application/x-python-serialize)",
        "unknown organisation": "unknown organisation",
        "unknown field": "priority: Extra inputs are not permitted",
    }
    for kind, fragment in expected.items():
        assert fragment in reasons[kind].reason, (kind, reasons[kind].reason)
    assert reasons["broken JSON"].raw_payload.startswith('[[], {"event"')
    assert "peer_" in reasons["invalid UTF-8"].raw_payload


def _quarantined(engine: Engine, task_ids: list[str]) -> list[Any]:
    q = quarantined_events
    with engine.connect() as c:
        return list(
            c.execute(
                select(q.c.task_id, q.c.reason, q.c.raw_payload).where(q.c.task_id.in_(task_ids))
            ).all()
        )
