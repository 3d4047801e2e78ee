"""``LOG_FORMAT``: plain text (the default) or one JSON object per line.

The JSON lines carry ``timestamp`` (ISO 8601, UTC), ``level``, ``logger`` and
``message``, plus whatever is bound with :func:`worker.observability.context.bound`
(``task_id``, ``event_id``, ``event_ids`` …) and any ``extra=`` of the call.
Worker and beat get it through Celery's logging signals, the CLI and the web
process through :func:`configure_logging`; all share :func:`json_formatter`.
"""

from __future__ import annotations

import logging
import sys
from typing import Any, Literal

from pythonjsonlogger.json import JsonFormatter

from worker.observability.context import ContextFilter

LogFormat = Literal["text", "json"]
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def json_formatter() -> logging.Formatter:
    return JsonFormatter(
        "%(levelname)s %(name)s %(message)s",
        rename_fields={"levelname": "level", "name": "logger"},
        timestamp=True,
        json_ensure_ascii=False,
    )


def use_format(logger: logging.Logger, log_format: LogFormat) -> None:
    """Give every handler of ``logger`` the context filter, and the JSON formatter if asked."""
    for handler in logger.handlers:
        if not any(isinstance(f, ContextFilter) for f in handler.filters):
            handler.addFilter(ContextFilter())
        if log_format == "json":
            handler.setFormatter(json_formatter())


def configure_logging(level: int, log_format: LogFormat, *, text_format: str = TEXT_FORMAT) -> None:
    """Root logging for processes Celery does not set up (the CLI, the web process)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(text_format))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    use_format(root, log_format)


def uvicorn_log_config(log_format: LogFormat) -> dict[str, Any]:
    """A ``logging.config.dictConfig`` for uvicorn (``--log-config``) in the chosen format."""
    formatter: dict[str, Any] = (
        {"()": "worker.observability.logging.json_formatter"}
        if log_format == "json"
        else {"format": TEXT_FORMAT}
    )
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"context": {"()": "worker.observability.context.ContextFilter"}},
        "formatters": {"default": formatter},
        "handlers": {
            "default": {
                "class": "logging.StreamHandler",
                "formatter": "default",
                "filters": ["context"],
                "stream": "ext://sys.stderr",
            }
        },
        "root": {"handlers": ["default"], "level": "INFO"},
        "loggers": {
            "uvicorn": {"handlers": [], "propagate": True},
            "uvicorn.error": {"handlers": [], "propagate": True},
            "uvicorn.access": {"handlers": [], "propagate": True},
        },
    }
