"""The consuming side of the reliable Redis transport: atomic pops, batched acks, heartbeats.

See :mod:`worker.broker.redis` for why and for which kombu methods this replaces.
"""

from __future__ import annotations

import logging
import os
import socket
import uuid
from collections import deque
from importlib.resources import files
from queue import Empty
from time import monotonic, sleep, time
from typing import Any

from celery.worker import state as worker_state
from kombu.transport import redis as kombu_redis
from kombu.transport import virtual
from kombu.utils.encoding import bytes_to_str
from kombu.utils.json import loads
from redis.exceptions import NoScriptError

logger = logging.getLogger(__name__)

POP_SCRIPT = files("worker.broker").joinpath("scripts/pop.lua").read_text()
HEARTBEAT_SCRIPT = files("worker.broker").joinpath("scripts/heartbeat.lua").read_text()

#: Defaults of the transport options (``broker_transport_options``).
DEFAULT_HEARTBEAT_INTERVAL = 2.0
DEFAULT_DEAD_TIMEOUT = 15.0
DEFAULT_POP_BATCH_SIZE = 100
DEFAULT_POLL_MAX_INTERVAL = 0.05
#: Dead consumers reaped per heartbeat (the rest on the next beats).
REAP_LIMIT = 10
#: Buffered acks are flushed at the next event-loop tick, or at once beyond this.
ACK_FLUSH_SIZE = 500


def _stopping() -> bool:
    """The worker process is shutting down (set by Celery's signal handlers)."""
    return worker_state.should_stop is not None or worker_state.should_terminate is not None


def _consumer_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:12]}"


class QoS(kombu_redis.QoS):
    """kombu's Redis QoS without the post-pop write, with batched acks."""

    def append(self, message: Any, delivery_tag: str) -> None:
        # pop.lua already recorded the message in unacked/unacked_index.
        virtual.QoS.append(self, message, delivery_tag)

    def ack(self, delivery_tag: str) -> None:
        self.channel.buffer_ack(delivery_tag)
        virtual.QoS.ack(self, delivery_tag)

    def _remove_from_indices(self, delivery_tag: str, pipe: Any = None) -> Any:
        # Also forget the tag in this consumer's held hash: a requeued message
        # may be popped by another consumer, which must not be reaped with us.
        pipe = super()._remove_from_indices(delivery_tag, pipe)
        return pipe.hdel(self.channel.held_key, delivery_tag)


class ReliableChannelMixin:
    """The consuming side of :class:`Channel` (see the module docstring)."""

    QoS = QoS
    consumers_key = "reliable.consumers"
    held_key_prefix = "reliable.held."
    undeliverable_key = "reliable.undeliverable"
    consumer_heartbeat_interval = DEFAULT_HEARTBEAT_INTERVAL
    consumer_dead_timeout = DEFAULT_DEAD_TIMEOUT
    pop_batch_size = DEFAULT_POP_BATCH_SIZE
    poll_max_interval = DEFAULT_POLL_MAX_INTERVAL

    from_transport_options: tuple[str, ...] = (
        *kombu_redis.Channel.from_transport_options,
        "consumer_heartbeat_interval",
        "consumer_dead_timeout",
        "pop_batch_size",
        "poll_max_interval",
    )

    # Attributes of kombu's Channel used below (for the type checker).
    connection: Any
    client: Any
    qos: Any
    sep: str
    priority_steps: list[int]
    unacked_key: str
    unacked_index_key: str
    global_keyprefix: str
    connection_errors: tuple[type[BaseException], ...]
    active_queues: list[str]
    _queue_cycle: Any
    _in_poll: Any
    _brpop_sent_at: float | None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.consumer_id = _consumer_id()
        self.held_key = self.held_key_prefix + self.consumer_id
        self._pending_acks: deque[str] = deque()
        self._consuming = False  # popped at least once: has a heartbeat to keep
        self._next_beat = 0.0
        self._poll_backoff = 0.0
        self._poll_not_before = 0.0
        self._wakeup_scheduled = False
        super().__init__(*args, **kwargs)
        if self.global_keyprefix:
            raise ValueError("the reliable Redis transport does not support global_keyprefix")
        scripts = self._create_client()  # type: ignore[attr-defined]
        self._pop_script = scripts.register_script(POP_SCRIPT)
        self._heartbeat_script = scripts.register_script(HEARTBEAT_SCRIPT)

    # -- popping ---------------------------------------------------------

    def _pop_keys(self, queues: list[str]) -> list[str]:
        lists = [self._q_for_pri(q, pri) for pri in self.priority_steps for q in queues]  # type: ignore[attr-defined]
        return [
            self.unacked_key,
            self.unacked_index_key,
            self.consumers_key,
            self.held_key,
            self.undeliverable_key,
            *lists,
        ]

    def _pop_count(self) -> int:
        free = self.qos.can_consume_max_estimate()
        return self.pop_batch_size if free is None else min(free, self.pop_batch_size)

    def _brpop_start(self, timeout: float | None = None) -> None:
        if _stopping():
            # The worker is shutting down: take nothing more (a message handed
            # to the pool now would outlive the parent's reading of results).
            return
        wait = self._poll_not_before - monotonic()
        if wait > 0:
            if getattr(self.connection.cycle, "hub", None) is None:
                sleep(wait)  # drain_events without an event loop: nothing else to do
            else:
                self._schedule_wake_up(wait)
                return
        queues = self._queue_cycle.consume(len(self.active_queues))
        count = self._pop_count()
        if not queues or count <= 0:
            return
        keys = self._pop_keys(queues)
        self._in_poll = self.client.connection
        self._brpop_sent_at = monotonic()
        self._consuming = True
        self.client.connection.send_command(
            "EVALSHA", self._pop_script.sha, len(keys), *keys, time(), count, self.consumer_id
        )

    def _schedule_wake_up(self, delay: float) -> None:
        """Make the event loop tick (and so poll again) ``delay`` seconds from now.

        kombu's hub computes its poll timeout from its timers *before* the
        tick callbacks run, so the entry is added when the empty reply is
        read, in time for the next timeout; otherwise the next poll would
        wait for whichever timer comes next (up to a second).
        """
        hub = getattr(self.connection.cycle, "hub", None)
        if hub is not None and not self._wakeup_scheduled:
            self._wakeup_scheduled = True
            hub.call_later(delay, self._wake_up)

    def _wake_up(self) -> None:
        self._wakeup_scheduled = False

    def _brpop_read(self, **options: Any) -> bool:
        try:
            try:
                reply = self.client.parse_response(self.client.connection, "EVALSHA", **options)
            except NoScriptError:
                # Redis restarted (or its script cache was flushed): load them again.
                self._pop_script.sha = self.client.script_load(POP_SCRIPT)
                raise Empty() from None
            except self.connection_errors:
                self.client.connection.disconnect()
                raise
            if not reply:
                self._poll_backoff = min(max(2 * self._poll_backoff, 0.005), self.poll_max_interval)
                self._poll_not_before = monotonic() + self._poll_backoff
                self._schedule_wake_up(self._poll_backoff)
                raise Empty()
            self._poll_backoff = self._poll_not_before = 0.0
            self._deliver_popped(reply)
            return True
        finally:
            self._in_poll = None
            self._flush_brpop_reauth()  # type: ignore[attr-defined]

    def _deliver_popped(self, reply: list[bytes]) -> None:
        if _stopping():
            return  # held by this consumer: handed back when the channel closes
        last = None
        for i in range(0, len(reply), 3):
            key, tag, raw = bytes_to_str(reply[i]), bytes_to_str(reply[i + 1]), reply[i + 2]
            queue = key.rsplit(self.sep, 1)[0]
            try:
                payload = loads(bytes_to_str(raw))
            except (TypeError, ValueError):
                self._set_aside(key, tag, raw)
                continue
            try:
                self.connection._deliver(payload, queue)
            except Exception:
                # Not this transport's to judge, but the rest of the pop must
                # still be delivered: keep the message aside rather than lose it.
                logger.exception("consumer failed on a message from %s", queue)
                self._set_aside(key, tag, raw)
            last = queue
        if last is not None:
            self._queue_cycle.rotate(last)

    def _set_aside(self, key: str, tag: str, raw: bytes) -> None:
        """A message that cannot be delivered: moved to the undeliverable list, logged."""
        logger.error("message %s from %s moved to %s", tag, key, self.undeliverable_key)
        with self.conn_or_acquire() as client:  # type: ignore[attr-defined]
            client.lpush(self.undeliverable_key, raw)
        if tag in self.qos._delivered:
            self.qos.ack(tag)
        else:
            self.buffer_ack(tag)

    def _get(self, queue: str) -> Any:
        """``basic_get``: one message through the same atomic pop."""
        with self.conn_or_acquire() as client:  # type: ignore[attr-defined]
            reply = self._pop_script(
                keys=self._pop_keys([queue]), args=[time(), 1, self.consumer_id], client=client
            )
        self._consuming = True
        if not reply:
            raise Empty()
        return loads(bytes_to_str(reply[2]))

    # -- acknowledging ---------------------------------------------------

    def buffer_ack(self, delivery_tag: str) -> None:
        self._pending_acks.append(delivery_tag)
        if len(self._pending_acks) >= ACK_FLUSH_SIZE:
            self.flush_acks()

    def flush_acks(self) -> None:
        """Acknowledge every buffered tag in one round trip (kept for the next try on error)."""
        tags: list[str] = []
        while self._pending_acks:
            tags.append(self._pending_acks.popleft())
        if not tags:
            return
        try:
            with self.conn_or_acquire() as client:  # type: ignore[attr-defined]
                pipe = client.pipeline(transaction=False)
                pipe.zrem(self.unacked_index_key, *tags)
                pipe.hdel(self.unacked_key, *tags)
                pipe.hdel(self.held_key, *tags)
                pipe.execute()
        except BaseException:
            self._pending_acks.extendleft(reversed(tags))
            raise

    # -- heartbeats --------------------------------------------------------

    def maybe_heartbeat(self) -> None:
        if not self._consuming or monotonic() < self._next_beat:
            return
        self._next_beat = monotonic() + self.consumer_heartbeat_interval
        self.heartbeat()

    def heartbeat(self, *, beat: bool = True) -> tuple[int, int]:
        """Record this consumer's beat; requeue dead consumers' messages -> (dead, requeued)."""
        now = time()
        with self.conn_or_acquire() as client:  # type: ignore[attr-defined]
            dead, requeued = self._heartbeat_script(
                keys=[self.unacked_key, self.unacked_index_key, self.consumers_key],
                args=[
                    now,
                    self.consumer_id if beat else "",
                    now - self.consumer_dead_timeout,
                    self.held_key_prefix,
                    REAP_LIMIT,
                ],
                client=client,
            )
        if requeued and beat:
            logger.warning(
                "requeued %d message(s) held by %d consumer(s) without a heartbeat for %ss",
                requeued,
                dead,
                self.consumer_dead_timeout,
            )
        elif requeued:
            logger.info("handed back %d held message(s) on closing", requeued)
        return int(dead), int(requeued)

    def release(self) -> None:
        """Requeue everything this consumer still holds and forget it (clean shutdown)."""
        with self.conn_or_acquire() as client:  # type: ignore[attr-defined]
            client.zadd(self.consumers_key, {self.consumer_id: 0})
        self.heartbeat(beat=False)
        self._consuming = False

    def close(self) -> None:
        if self._consuming and not getattr(self, "closed", True):
            try:
                if self._in_poll:
                    # A pop in flight: its messages are held by us already and
                    # are requeued below, so read the reply without delivering.
                    self.client.parse_response(self.client.connection, "EVALSHA")
                    self._in_poll = None
                self.flush_acks()
                self.release()
            except (Empty, *self.connection_errors):  # type: ignore[misc]
                logger.warning("could not hand back held messages; the heartbeat timeout will")
        super().close()  # type: ignore[misc]
