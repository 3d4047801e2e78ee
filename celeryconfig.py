"""Celery settings, built from ``worker.core.settings`` (the one place configuration is read).

Choices, and why:

* **JSON only** (``task_serializer``/``accept_content``): producers in other
  languages publish to us, and pickle would execute whatever a message holds.
* **acks_late + reject_on_worker_lost**: a message is acknowledged only after
  its unit of work committed; a worker killed mid-task leaves it to be
  re-delivered, and the pipeline makes re-delivery a no-op.
* **prefetch**: ingestion buffers messages into batches
  (``INGEST_BATCH_SIZE``), so each worker process may hold two batches'
  worth of unacknowledged messages: one being processed, one filling.
* **visibility timeout** (Redis): an unacknowledged message is re-delivered
  after this long, so it must exceed the longest task; every retry countdown
  is capped far below it (``max_retry_delay_s``) for the same reason.
* **Queues**: ``activity_events`` for ingestion, ``notifications`` for
  delivery (slow pushes never hold up ingestion), ``maintenance`` for the
  periodic jobs and the retroactive evaluation after a configuration write.
* **Beat schedule** (``celery -A worker beat``): tier re-evaluation every
  ``TIER_REEVALUATION_INTERVAL_S`` (15 min), outbox relay every
  ``OUTBOX_RELAY_INTERVAL_S`` (30 s), reconcile nightly at
  ``RECONCILE_HOUR``:``RECONCILE_MINUTE`` in ``TIMEZONE``.  Interval messages
  expire after one interval, so a stopped worker does not come back to a pile
  of identical runs.  Every periodic job takes an advisory lock and writes
  idempotently, so a second beat process by mistake is harmless.
* **Task events on** (``worker_send_task_events``, ``task_send_sent_event``):
  monitoring tools see every message, batched ones included.
* **Reliable Redis transport** (``worker/broker/redis.py``), chosen for
  ``redis://``, ``rediss://`` and ``sentinel://`` broker URLs: atomic pop
  into kombu's unacked bookkeeping, batched acks, consumer heartbeats, so a
  killed worker's messages come back within ``BROKER_CONSUMER_DEAD_AFTER_S``
  (docs/reliability.md).  Producers are unchanged (plain ``LPUSH``).
* **Soft shutdown** (``worker_soft_shutdown_timeout``): a cold shutdown
  first gives running tasks ``WORKER_SOFT_SHUTDOWN_TIMEOUT_S`` to finish.
* **Embedded default**: kombu's ``filesystem://`` transport in the local data
  directory; it works across processes (producer and worker share the folder)
  and needs no server.  Results are never stored: tasks write to the database.
"""

from __future__ import annotations

import ssl
from typing import Any

from celery.schedules import crontab
from kombu.entity import Queue

from worker.core.settings import Settings, get_settings

_settings = get_settings()
_settings.ensure_data_dir()

ACTIVITY_QUEUE = "activity_events"
NOTIFICATION_QUEUE = "notifications"
MAINTENANCE_QUEUE = "maintenance"

broker_url = _settings.effective_broker_url
if _settings.broker_url is None:
    # kombu's filesystem transport with atomic writes (see worker/broker/filesystem.py).
    broker_transport = "worker.broker.filesystem:AtomicFilesystemTransport"
    broker_transport_options = {
        "data_folder_in": str(_settings.broker_folder / "queue"),
        "data_folder_out": str(_settings.broker_folder / "queue"),
        "processed_folder": str(_settings.broker_folder / "processed"),
        "store_processed": False,
        # Fanout bindings (task events, remote control) stay in the data directory too.
        "control_folder": str(_settings.broker_folder / "control"),
    }
else:
    broker_transport_options = {
        "visibility_timeout": _settings.broker_visibility_timeout_s,
        # Sweep for messages of dead consumers every interval (kombu's default
        # scans only every tenth interval, i.e. about every 100 s).
        "unacked_restore_interval": _settings.broker_restore_interval_s,
        "unacked_restore_throttle": 1,
    }
    _scheme = _settings.broker_url.split("://", 1)[0]
    if _scheme in ("redis", "rediss"):
        broker_transport = "worker.broker.redis:Transport"
    elif _scheme == "sentinel":
        broker_transport = "worker.broker.redis:SentinelTransport"
        broker_transport_options["master_name"] = _settings.broker_sentinel_master
    if _scheme in ("redis", "rediss", "sentinel"):
        broker_transport_options.update(
            consumer_heartbeat_interval=_settings.broker_consumer_heartbeat_s,
            consumer_dead_timeout=_settings.broker_consumer_dead_after_s,
        )
    if _scheme == "rediss" and "ssl_cert_reqs" not in _settings.broker_url:
        # The scheme no longer implies TLS once the transport is named explicitly.
        broker_use_ssl = {"ssl_cert_reqs": ssl.CERT_REQUIRED}

broker_connection_retry_on_startup = True
task_serializer = "json"
accept_content = ["json"]
result_serializer = "json"
task_ignore_result = True
result_backend = None

task_acks_late = True
task_reject_on_worker_lost = True
worker_prefetch_multiplier = 2 * _settings.ingest_batch_size
worker_cancel_long_running_tasks_on_connection_loss = True
worker_soft_shutdown_timeout = _settings.worker_soft_shutdown_timeout_s

task_queues = (Queue(ACTIVITY_QUEUE), Queue(NOTIFICATION_QUEUE), Queue(MAINTENANCE_QUEUE))
task_default_queue = MAINTENANCE_QUEUE
task_routes = {
    "badges.ingest_activity": {"queue": ACTIVITY_QUEUE},
    "badges.deliver_*": {"queue": NOTIFICATION_QUEUE},
    "badges.relay_outbox": {"queue": MAINTENANCE_QUEUE},
    "badges.reevaluate_tiers": {"queue": MAINTENANCE_QUEUE},
    "badges.reconcile": {"queue": MAINTENANCE_QUEUE},
    "badges.evaluate_definitions": {"queue": MAINTENANCE_QUEUE},
}

timezone = _settings.timezone
enable_utc = True
imports = ("worker.tasks",)
worker_hijack_root_logger = True

# Task events (what Flower and celery-exporter read): on, per message even when
# ingestion batches them (worker/tasks/batch_events.py).
worker_send_task_events = True
task_send_sent_event = True

# Beat: heartbeat file and schedule state under the data directory (worker/tasks/beat.py).
beat_scheduler = "worker.tasks.beat:HeartbeatScheduler"
beat_schedule_filename = str(_settings.beat_schedule_file)


def build_beat_schedule(settings: Settings) -> dict[str, dict[str, Any]]:
    """The celery beat schedule for ``settings`` (a function so tests can vary it)."""
    return {
        "reevaluate-tiers": {
            "task": "badges.reevaluate_tiers",
            "schedule": settings.tier_reevaluation_interval_s,
            "options": {
                "queue": MAINTENANCE_QUEUE,
                "expires": settings.tier_reevaluation_interval_s,
            },
        },
        "relay-outbox": {
            "task": "badges.relay_outbox",
            "schedule": settings.outbox_relay_interval_s,
            "options": {"queue": MAINTENANCE_QUEUE, "expires": settings.outbox_relay_interval_s},
        },
        "reconcile": {
            "task": "badges.reconcile",
            # crontab is read in the app's ``timezone`` (above): local wall-clock time.
            "schedule": crontab(minute=settings.reconcile_minute, hour=settings.reconcile_hour),
            "options": {"queue": MAINTENANCE_QUEUE},
        },
    }


beat_schedule = build_beat_schedule(_settings)
