"""Celery settings, built from ``worker.settings`` (the one place configuration is read).

Choices, and why:

* **JSON only** (``task_serializer``/``accept_content``): producers in other
  languages publish to us, and pickle would execute whatever a message holds.
* **acks_late + reject_on_worker_lost**: a message is acknowledged only after
  its unit of work committed; a worker killed mid-task leaves it to be
  re-delivered, and the pipeline makes re-delivery a no-op.
* **prefetch multiplier 1**: with late acks, every prefetched message is a
  message another worker cannot take; one at a time keeps work spread evenly.
* **visibility timeout** (Redis): an unacknowledged message is re-delivered
  after this long, so it must exceed the longest task; every retry countdown
  is capped far below it (``max_retry_delay_s``) for the same reason.
* **Queues**: ``activity_events`` for ingestion, ``notifications`` for
  delivery (slow pushes never hold up ingestion), ``maintenance`` for the
  periodic jobs.
* **Embedded default**: kombu's ``filesystem://`` transport in the local data
  directory; it works across processes (producer and worker share the folder)
  and needs no server.  Results are never stored: tasks write to the database.
"""

from __future__ import annotations

from kombu import Queue

from worker.settings import get_settings

_settings = get_settings()
_settings.ensure_data_dir()

ACTIVITY_QUEUE = "activity_events"
NOTIFICATION_QUEUE = "notifications"
MAINTENANCE_QUEUE = "maintenance"

broker_url = _settings.effective_broker_url
if _settings.broker_url is None:
    broker_transport_options = {
        "data_folder_in": str(_settings.broker_folder / "queue"),
        "data_folder_out": str(_settings.broker_folder / "queue"),
        "processed_folder": str(_settings.broker_folder / "processed"),
        "store_processed": False,
    }
else:
    broker_transport_options = {"visibility_timeout": _settings.broker_visibility_timeout_s}

broker_connection_retry_on_startup = True
task_serializer = "json"
accept_content = ["json"]
result_serializer = "json"
task_ignore_result = True
result_backend = None

task_acks_late = True
task_reject_on_worker_lost = True
worker_prefetch_multiplier = 1
worker_cancel_long_running_tasks_on_connection_loss = True

task_queues = (Queue(ACTIVITY_QUEUE), Queue(NOTIFICATION_QUEUE), Queue(MAINTENANCE_QUEUE))
task_default_queue = MAINTENANCE_QUEUE
task_routes = {
    "badges.ingest_activity": {"queue": ACTIVITY_QUEUE},
    "badges.deliver_*": {"queue": NOTIFICATION_QUEUE},
    "badges.relay_outbox": {"queue": MAINTENANCE_QUEUE},
    "badges.reevaluate_tiers": {"queue": MAINTENANCE_QUEUE},
    "badges.reconcile": {"queue": MAINTENANCE_QUEUE},
}

timezone = _settings.timezone
enable_utc = True
imports = ("worker.tasks",)
worker_hijack_root_logger = True
