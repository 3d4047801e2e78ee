"""The REST API: an HTTP face for earned badges, configuration and mentor views.

A separate top-level package on purpose: it imports the worker's service
functions (one implementation of awarding and validation), but the Celery
worker never imports it.  Run it with ``uvicorn api.app:app``.
"""
