"""A kombu Redis transport that loses no message when a worker dies, and recovers in seconds.

Stock kombu consumes with ``BRPOP`` and only *afterwards* records the message
in its ``unacked`` hash (``QoS.append``: a JSON decode, a JSON encode and a
round trip later).  A worker killed in between loses the message for good.
A worker killed later leaves its messages in ``unacked`` until they are older
than the visibility timeout (an hour here), because nothing tells a dead
consumer from a slow one.

This transport keeps kombu's data layout (the queue lists producers ``LPUSH``
onto, the ``unacked`` hash and ``unacked_index`` zset) so every producer and
every stock kombu worker keeps working, and replaces the consuming side:

* ``Channel._brpop_start`` / ``_brpop_read`` (and ``_get``): instead of
  ``BRPOP`` the channel runs ``scripts/pop.lua``, which pops up to the
  consumer's free prefetch from the queue lists (same key order as ``BRPOP``:
  priority, then the round-robin queue cycle) and records each message in
  ``unacked``/``unacked_index`` *and* in this consumer's ``held`` hash in the
  same atomic step.  A script cannot block, so an empty poll backs off
  (doubling up to ``poll_max_interval``, 0.05 s by default) before the next.
* ``QoS.append`` writes nothing (the script did); ``QoS.ack`` buffers the
  tag and the poller acknowledges every buffered tag in one pipeline per
  event-loop tick, so a batch of a hundred messages costs one round trip.
* Consumer heartbeats: every ``consumer_heartbeat_interval`` seconds each
  consuming channel runs ``scripts/heartbeat.lua``, which records its beat
  and requeues, atomically, every message held by a consumer whose last beat
  is older than ``consumer_dead_timeout``.  So any live worker, not only a
  restarted one, hands back a dead worker's messages within seconds; the
  visibility-timeout sweep of stock kombu stays on as the last resort.
* Shutdown: once the worker is stopping no more is popped, and
  ``Channel.close`` flushes the buffered acks and requeues at once whatever
  this consumer still holds (a warm shutdown hands its prefetched messages
  back instead of leaving them to the heartbeat timeout).

Sentinel URLs get the same behaviour through :class:`SentinelTransport`.
The ``global_keyprefix`` option is not supported (the scripts name keys
themselves).
"""

from __future__ import annotations

import logging
from typing import Any

from kombu.transport import redis as kombu_redis

from worker.broker.reliable_channel import (
    DEFAULT_HEARTBEAT_INTERVAL,
    HEARTBEAT_SCRIPT,
    POP_SCRIPT,
    QoS,
    ReliableChannelMixin,
)

__all__ = ["HEARTBEAT_SCRIPT", "POP_SCRIPT", "QoS", "SentinelTransport", "Transport"]

logger = logging.getLogger(__name__)


class Channel(ReliableChannelMixin, kombu_redis.Channel):  # type: ignore[misc]
    """Redis channel with atomic pops, batched acks and consumer heartbeats."""


class SentinelChannel(ReliableChannelMixin, kombu_redis.SentinelChannel):  # type: ignore[misc]
    """The same, with the master found through Redis Sentinel."""

    from_transport_options: tuple[str, ...] = (  # type: ignore[assignment]
        *ReliableChannelMixin.from_transport_options,
        *kombu_redis.SentinelChannel.from_transport_options[
            len(kombu_redis.Channel.from_transport_options) :
        ],
    )


class Poller(kombu_redis.MultiChannelPoller):
    """kombu's poller, flushing acks and beating on every tick."""

    hub: Any = None
    _heartbeat_tref: Any = None

    def on_poll_start(self) -> None:
        for channel in list(self._channels):
            try:
                channel.flush_acks()
                channel.maybe_heartbeat()
            except channel.connection_errors:
                logger.debug("ack flush or heartbeat failed; retrying next tick", exc_info=True)
        super().on_poll_start()

    def maybe_heartbeat(self) -> None:
        for channel in list(self._channels):
            try:
                channel.maybe_heartbeat()
            except channel.connection_errors:
                logger.debug("heartbeat failed; retrying next beat", exc_info=True)


class _EventLoopMixin:
    cycle: Poller

    def _setup_poller(self) -> None:
        self.cycle = Poller()

    def register_with_event_loop(self, connection: Any, loop: Any) -> None:
        super().register_with_event_loop(connection, loop)  # type: ignore[misc]
        self.cycle.hub = loop
        old = getattr(self.cycle, "_heartbeat_tref", None)
        if old is not None:
            old.cancel()
        interval = connection.client.transport_options.get(
            "consumer_heartbeat_interval", DEFAULT_HEARTBEAT_INTERVAL
        )
        self.cycle._heartbeat_tref = loop.call_repeatedly(interval, self.cycle.maybe_heartbeat)


class Transport(_EventLoopMixin, kombu_redis.Transport):  # type: ignore[misc]
    """``redis://`` and ``rediss://`` with the reliable channel."""

    Channel = Channel

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._setup_poller()


class SentinelTransport(_EventLoopMixin, kombu_redis.SentinelTransport):  # type: ignore[misc]
    """``sentinel://`` with the reliable channel."""

    Channel = SentinelChannel

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._setup_poller()
