"""Peer-mentor recognition worker: activity events in, badges and tiers out.

``celery -A worker worker`` finds the Celery app through the lazy ``celery``
attribute below, so importing the package (or its pure modules) never pulls in
Celery.
"""

from typing import Any

__all__ = ["celery"]


def __getattr__(name: str) -> Any:
    if name == "celery":
        from worker.app import app

        return app
    raise AttributeError(name)
