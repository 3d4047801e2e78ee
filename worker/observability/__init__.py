"""Observability: structured logging, Prometheus metrics and heartbeat files.

Nothing here imports Celery: the Celery wiring (signals, bootsteps, the beat
scheduler) lives in :mod:`worker.tasks.observability` and calls these
helpers, so the CLI and the web process can use them too.
"""
