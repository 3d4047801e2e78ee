"""The push gateway client, and the retry policy for push delivery.

One POST of a JSON message per attempt, with a bearer token and an
``Idempotency-Key`` header (the outbox row id): a send repeated after a crash
or a lost answer is delivered once by the gateway.  The client never raises
for gateway or network trouble; it classifies the outcome so the caller can
decide between *sent*, *retry later* and *give up*:

* 2xx: sent.
* connection errors, timeouts, 408, 429 and 5xx: retryable (``Retry-After``
  is read, in seconds or as an HTTP date);
* any other status (other 4xx, an unexpected 3xx): permanent; retrying the
  same request cannot succeed.

Imports neither sqlalchemy nor celery.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from enum import StrEnum
from typing import Any

import httpx

#: Statuses below 500 that are still worth retrying.
RETRYABLE_4XX = frozenset({408, 429})
#: How much of an error response body is kept in ``last_error``.
ERROR_BODY_CHARS = 200


class PushOutcome(StrEnum):
    SENT = "sent"
    RETRYABLE = "retryable"
    PERMANENT = "permanent"


@dataclass(frozen=True)
class PushResult:
    outcome: PushOutcome
    error: str | None = None
    status_code: int | None = None
    #: The gateway's ``Retry-After``, in seconds from now, when it sent one.
    retry_after_s: float | None = None


class PushGateway:
    """An HTTP client for the push gateway; reuse one per process (connection pooling)."""

    def __init__(
        self,
        url: str,
        *,
        token: str | None,
        connect_timeout_s: float,
        read_timeout_s: float,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        headers = {"Content-Type": "application/json", "User-Agent": "peer-mentor-badges"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self.url = url
        self._client = httpx.Client(
            headers=headers,
            timeout=httpx.Timeout(read_timeout_s, connect=connect_timeout_s),
            transport=transport,
            follow_redirects=False,
        )

    def send(self, message: Mapping[str, Any], *, idempotency_key: str) -> PushResult:
        """POST ``message``; classify what happened (never raises for HTTP trouble)."""
        try:
            response = self._client.post(
                self.url, json=dict(message), headers={"Idempotency-Key": idempotency_key}
            )
        except httpx.TimeoutException as exc:
            return PushResult(PushOutcome.RETRYABLE, f"timeout: {_describe(exc)}")
        except httpx.HTTPError as exc:
            return PushResult(PushOutcome.RETRYABLE, f"connection error: {_describe(exc)}")
        return classify_response(response)

    def close(self) -> None:
        self._client.close()


def classify_response(response: httpx.Response, *, now: datetime | None = None) -> PushResult:
    status = response.status_code
    if 200 <= status < 300:
        return PushResult(PushOutcome.SENT, status_code=status)
    error = f"HTTP {status}"
    text = " ".join(response.text.split())[:ERROR_BODY_CHARS]
    if text:
        error += f": {text}"
    if status >= 500 or status in RETRYABLE_4XX:
        retry_after = parse_retry_after(response.headers.get("Retry-After"), now=now)
        return PushResult(PushOutcome.RETRYABLE, error, status, retry_after)
    return PushResult(PushOutcome.PERMANENT, error, status)


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or HTTP date)."""
    if value is None or not value.strip():
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def retry_delay(
    attempt: int,
    *,
    base_s: float,
    cap_s: float,
    jitter: float,
    retry_after_s: float | None = None,
) -> float:
    """Seconds to wait before the next attempt, after ``attempt`` (1-based) failed.

    Exponential backoff ``base * 2**(attempt-1)`` with "equal jitter" (a random
    point in its upper half, ``jitter`` in [0, 1)), so retries of many rows do
    not arrive at the gateway in lock-step.  A gateway's ``Retry-After`` is a
    lower bound.  Everything is capped at ``cap_s``, which stays below the
    broker's visibility timeout: a countdown longer than that would have the
    broker hand the waiting message to a second worker.
    """
    exponential = base_s * 2.0 ** min(max(attempt - 1, 0), 30)
    delay = exponential * (0.5 + 0.5 * min(max(jitter, 0.0), 1.0))
    if retry_after_s is not None:
        delay = max(delay, retry_after_s)
    return min(delay, cap_s)


def _describe(exc: Exception) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
