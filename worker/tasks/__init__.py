"""Celery tasks: thin adapters from messages to service functions."""

from worker.tasks import configuration, ingest, notifications, periodic  # noqa: F401  (registers the tasks)
