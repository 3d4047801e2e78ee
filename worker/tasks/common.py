"""What every task shares: the errors worth retrying."""

from __future__ import annotations

import logging

from kombu.exceptions import OperationalError as BrokerError
from sqlalchemy.exc import InterfaceError, OperationalError

log = logging.getLogger(__name__)

#: Outages (connection refused or lost, server shutting down, broker down), not
#: bad input: retried with backoff, never quarantined.
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    OperationalError,
    InterfaceError,
    BrokerError,
    ConnectionError,
)
