"""Prepare prometheus_client's multiprocess mode before the library is imported.

prometheus_client picks its value store when it is first imported: with
``PROMETHEUS_MULTIPROC_DIR`` set, every process (the worker's main process
and each prefork child) writes its samples to memory-mapped files in that
folder, and a collector in the main process adds them up.  So the folder must
be in the environment before anything imports prometheus_client, and before
the pool forks: the Celery app module calls :func:`prepare_multiprocess_dir`
first thing.  Each worker instance gets a fresh folder (counters start at
zero with the process, as Prometheus expects) unless the operator set one.
"""

from __future__ import annotations

import os
import sys
import tempfile

METRICS_PORT_ENV = "WORKER_METRICS_PORT"
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def prepare_multiprocess_dir() -> str | None:
    """Create and export the multiprocess folder when worker metrics are on; return it.

    Only in a ``celery … worker`` process: the CLI imports the Celery app too
    (to publish), and must neither serve metrics nor leave folders behind.
    """
    if not os.environ.get(METRICS_PORT_ENV) or not _is_celery_worker(sys.argv):
        return None
    if not os.environ.get(MULTIPROC_ENV):
        os.environ[MULTIPROC_ENV] = tempfile.mkdtemp(prefix="badges-metrics-")
    os.makedirs(os.environ[MULTIPROC_ENV], exist_ok=True)
    return os.environ[MULTIPROC_ENV]


#: Celery's global options that take a value (``celery -A worker worker``).
_VALUE_OPTIONS = {"-A", "--app", "-b", "--broker", "--result-backend", "--loader", "--config",
                  "--workdir"}  # fmt: skip


def _is_celery_worker(argv: list[str]) -> bool:
    """True for ``celery [options] worker …`` (also ``python -m celery``)."""
    if not argv or "celery" not in argv[0]:  # .../bin/celery or .../celery/__main__.py
        return False
    args = iter(argv[1:])
    for arg in args:
        if arg in _VALUE_OPTIONS:
            next(args, None)
        elif not arg.startswith("-"):
            return arg == "worker"
    return False
