"""Celery tasks: thin adapters from messages to service functions."""

from worker.tasks import ingest, notifications, periodic  # noqa: F401  (registers the tasks)
