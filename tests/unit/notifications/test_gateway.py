"""The push gateway client (over httpx.MockTransport) and the retry delay policy."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from email.utils import format_datetime

import httpx
import pytest

from worker.notifications.gateway import PushGateway, PushOutcome, parse_retry_after, retry_delay

URL = "https://push.example.test/v1/messages"
MESSAGE = {"id": "abc", "title": "Nytt merke: Telefonvenn", "body": "Gratulerer."}


def gateway(handler: httpx.MockTransport) -> PushGateway:
    return PushGateway(
        URL, token="s3cret", connect_timeout_s=1.0, read_timeout_s=2.0, transport=handler
    )


def answering(status: int, **kwargs: object) -> httpx.MockTransport:
    return httpx.MockTransport(lambda request: httpx.Response(status, **kwargs))  # type: ignore[arg-type]


def test_posts_json_with_bearer_token_and_idempotency_key() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(202)

    result = gateway(httpx.MockTransport(handler)).send(MESSAGE, idempotency_key="outbox-1")

    assert result.outcome is PushOutcome.SENT
    assert result.status_code == 202
    (request,) = seen
    assert request.method == "POST"
    assert str(request.url) == URL
    assert request.headers["Authorization"] == "Bearer s3cret"
    assert request.headers["Idempotency-Key"] == "outbox-1"
    assert request.headers["Content-Type"] == "application/json"
    assert json.loads(request.content) == MESSAGE


def test_no_token_sends_no_authorization_header() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200)

    client = PushGateway(
        URL,
        token=None,
        connect_timeout_s=1,
        read_timeout_s=1,
        transport=httpx.MockTransport(handler),
    )
    assert client.send(MESSAGE, idempotency_key="k").outcome is PushOutcome.SENT
    assert "Authorization" not in seen[0].headers


def test_timeouts_are_configured_separately() -> None:
    client = PushGateway(URL, token=None, connect_timeout_s=1.5, read_timeout_s=7.0)
    timeout = client._client.timeout
    assert (timeout.connect, timeout.read) == (1.5, 7.0)
    client.close()


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_server_errors_are_retryable(status: int) -> None:
    result = gateway(answering(status, text="upstream\nbroke")).send(MESSAGE, idempotency_key="k")
    assert result.outcome is PushOutcome.RETRYABLE
    assert result.error == f"HTTP {status}: upstream broke"
    assert result.retry_after_s is None


def test_429_is_retryable_and_carries_retry_after() -> None:
    result = gateway(answering(429, headers={"Retry-After": "7"})).send(
        MESSAGE, idempotency_key="k"
    )
    assert result.outcome is PushOutcome.RETRYABLE
    assert result.status_code == 429
    assert result.retry_after_s == 7.0


@pytest.mark.parametrize("status", [400, 401, 403, 404, 410, 422])
def test_other_client_errors_are_permanent(status: int) -> None:
    result = gateway(answering(status, json={"error": "bad token"})).send(
        MESSAGE, idempotency_key="k"
    )
    assert result.outcome is PushOutcome.PERMANENT
    assert result.error is not None and result.error.startswith(f"HTTP {status}")
    assert "bad token" in result.error


def test_redirects_are_not_followed_and_count_as_permanent() -> None:
    result = gateway(answering(301, headers={"Location": "http://elsewhere/"})).send(
        MESSAGE, idempotency_key="k"
    )
    assert result.outcome is PushOutcome.PERMANENT


@pytest.mark.parametrize(
    ("exc", "prefix"),
    [
        (httpx.ConnectError("connection refused"), "connection error: ConnectError"),
        (httpx.ReadTimeout("timed out"), "timeout: ReadTimeout"),
        (httpx.ConnectTimeout("timed out"), "timeout: ConnectTimeout"),
        (httpx.RemoteProtocolError("server hung up"), "connection error: RemoteProtocolError"),
    ],
)
def test_network_trouble_is_retryable_not_raised(exc: Exception, prefix: str) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise exc

    result = gateway(httpx.MockTransport(handler)).send(MESSAGE, idempotency_key="k")
    assert result.outcome is PushOutcome.RETRYABLE
    assert result.error is not None and result.error.startswith(prefix)


def test_retry_after_as_seconds_or_http_date() -> None:
    now = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
    assert parse_retry_after("120", now=now) == 120.0
    later = format_datetime(datetime(2026, 3, 2, 12, 0, 30, tzinfo=UTC), usegmt=True)
    assert parse_retry_after(later, now=now) == 30.0
    earlier = format_datetime(datetime(2026, 3, 2, 11, 0, tzinfo=UTC), usegmt=True)
    assert parse_retry_after(earlier, now=now) == 0.0
    assert parse_retry_after(None) is None
    assert parse_retry_after("soon") is None


def test_retry_delay_grows_exponentially_within_jitter_bounds() -> None:
    for attempt in range(1, 6):
        low = retry_delay(attempt, base_s=2, cap_s=10_000, jitter=0.0)
        high = retry_delay(attempt, base_s=2, cap_s=10_000, jitter=0.999999)
        full = 2 * 2 ** (attempt - 1)
        assert low == full / 2
        assert full / 2 < high <= full


def test_retry_delay_honours_retry_after_and_never_exceeds_the_cap() -> None:
    assert retry_delay(1, base_s=2, cap_s=600, jitter=0.5, retry_after_s=45) == 45
    assert retry_delay(1, base_s=2, cap_s=30, jitter=0.5, retry_after_s=3600) == 30
    assert retry_delay(200, base_s=2, cap_s=600, jitter=1.0) == 600
