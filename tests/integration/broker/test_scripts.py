"""The reliable transport's Lua scripts, run by the real Redis server."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from tests import services
from worker.broker.redis import HEARTBEAT_SCRIPT, POP_SCRIPT

pytestmark = pytest.mark.integration

SEP = "\x06\x16"
CONSUMERS, UNACKED, INDEX = "reliable.consumers", "unacked", "unacked_index"


@pytest.fixture(scope="module")
def redis_db() -> Iterator[str]:
    """A Redis database index of its own: the session's is shared with its worker."""
    url, index = services.claim_redis_db()
    yield url
    services.release_redis_db(index)


@pytest.fixture
def r(redis_db: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_db)
    yield client
    client.flushdb()


def envelope(body: str = "x", queue: str = "q") -> dict[str, Any]:
    return {
        "body": body,
        "headers": {"task": "t", "args": []},
        "content-type": "application/json",
        "properties": {
            "delivery_tag": str(uuid.uuid4()),
            "delivery_info": {"exchange": queue, "routing_key": queue},
        },
    }


def pop(r: redis.Redis, consumer: str, queues: list[str], count: int, now: float = 1000.0) -> Any:
    keys = [UNACKED, INDEX, CONSUMERS, f"reliable.held.{consumer}", "reliable.undeliverable"]
    arguments: list[Any] = [*keys, *queues, now, count, consumer]
    return r.eval(POP_SCRIPT, len(keys) + len(queues), *arguments)


def beat(r: redis.Redis, consumer: str, now: float, dead_after: float = 15.0) -> list[int]:
    args: list[Any] = [now, consumer, now - dead_after, "reliable.held.", 10]
    return list(r.eval(HEARTBEAT_SCRIPT, 3, UNACKED, INDEX, CONSUMERS, *args))


def test_pop_records_each_message_where_kombu_looks_for_it(r: redis.Redis) -> None:
    messages = [envelope(f"m{i}") for i in range(5)]
    for m in messages:
        r.lpush("q", json.dumps(m))
    reply = pop(r, "c1", ["q"], 3)
    popped = [json.loads(raw) for raw in reply[2::3]]
    assert reply[0::3] == [b"q"] * 3
    assert reply[1::3] == [m["properties"]["delivery_tag"].encode() for m in messages[:3]]
    assert popped == messages[:3]  # oldest first, as BRPOP on an LPUSHed list
    assert r.llen("q") == 2
    for m in popped:
        tag = m["properties"]["delivery_tag"]
        # kombu's layout, so a stock worker's ack/reject/restore reads it.
        assert json.loads(r.hget(UNACKED, tag) or "null") == [m, "q", "q"]
        assert r.zscore(INDEX, tag) == 1000.0
        assert r.hexists("reliable.held.c1", tag)
    assert r.zscore(CONSUMERS, "c1") == 1000.0


def test_pop_follows_key_order_then_fills_from_the_next_list(r: redis.Redis) -> None:
    r.lpush(f"q{SEP}3", json.dumps(envelope("low")))
    r.lpush("q", json.dumps(envelope("high-1")), json.dumps(envelope("high-2")))
    reply = pop(r, "c1", ["q", f"q{SEP}3"], 10)
    assert [json.loads(raw)["body"] for raw in reply[2::3]] == ["high-1", "high-2", "low"]
    assert reply[0::3] == [b"q", b"q", f"q{SEP}3".encode()]
    assert pop(r, "c1", ["q", f"q{SEP}3"], 10) == []


def test_an_envelope_that_is_no_kombu_message_is_set_aside_not_lost(r: redis.Redis) -> None:
    good = envelope("good")
    r.lpush("q", b"\xff not json", json.dumps({"no": "properties"}), json.dumps(good))
    reply = pop(r, "c1", ["q"], 10)
    assert [json.loads(raw) for raw in reply[2::3]] == [good]
    assert sorted(r.lrange("reliable.undeliverable", 0, -1)) == sorted(
        [b"\xff not json", json.dumps({"no": "properties"}).encode()]
    )
    assert r.hlen(UNACKED) == 1


def test_a_dead_consumers_unacked_messages_are_requeued_once(r: redis.Redis) -> None:
    messages = [envelope(f"m{i}") for i in range(4)]
    for m in messages:
        r.lpush("q", json.dumps(m))
    pop(r, "dead", ["q"], 3, now=1000.0)
    # One of them was acknowledged before the consumer died.
    acked = messages[0]["properties"]["delivery_tag"]
    r.hdel(UNACKED, acked)
    r.zrem(INDEX, acked)
    pop(r, "alive", ["q"], 1, now=1010.0)

    assert beat(r, "alive", now=1012.0) == [0, 0]  # 12 s without a beat: not dead yet
    assert beat(r, "alive", now=1020.0) == [1, 2]  # 20 s: dead, two messages back
    assert beat(r, "other", now=1020.5) == [0, 0]  # a second reaper finds nothing
    requeued = [json.loads(raw) for raw in r.lrange("q", 0, -1)]
    assert sorted(m["body"] for m in requeued) == ["m1", "m2"]
    assert requeued[0] in messages  # exactly as published, byte for byte
    assert r.zscore(CONSUMERS, "dead") is None
    assert not r.exists("reliable.held.dead")
    assert r.hlen(UNACKED) == 1  # the live consumer's message stays with it
    assert r.zscore(CONSUMERS, "alive") == 1020.0


def test_a_message_requeued_by_its_consumer_is_not_reaped_with_it(r: redis.Redis) -> None:
    m = envelope("m")
    r.lpush("q", json.dumps(m))
    pop(r, "first", ["q"], 1, now=1000.0)
    tag = m["properties"]["delivery_tag"]
    # What QoS.reject(requeue=True) does: restore, and forget the tag as held.
    entry = json.loads(r.hget(UNACKED, tag) or "null")
    r.hdel(UNACKED, tag)
    r.zrem(INDEX, tag)
    r.hdel("reliable.held.first", tag)
    r.rpush("q", json.dumps(entry[0]))
    pop(r, "second", ["q"], 1, now=1001.0)
    beat(r, "second", now=1030.0)  # "first" is dead now
    assert r.llen("q") == 0
    assert r.hexists(UNACKED, tag)
    assert r.hexists("reliable.held.second", tag)
