"""AsyncSessionMoodClient against a mocked transport (respx), on anyio.

Mirrors tests/test_client_sync.py case for case, in the same order and under
the same names; tests/test_client_exports.py fails if the two drift apart.
The clock is patched everywhere: nothing here really sleeps.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta, timezone
from email.utils import format_datetime
from typing import Any

import httpx
import pytest
import respx
from pydantic import ValidationError

from sessionmood_client import (
    DEFAULT_TIMEOUT,
    ActionAnalyticsResponse,
    AnalyticsResponse,
    APIConnectionError,
    APIResponseValidationError,
    APIStatusError,
    APITimeoutError,
    AsyncSessionMoodClient,
    AuthenticationError,
    BadRequestError,
    ClickEvent,
    ConflictError,
    DeleteSessionResponse,
    ExportEventsResponse,
    FeedbackResponse,
    HealthResponse,
    InternalServerError,
    KeyGenerateResponse,
    MoodChange,
    MoodResponse,
    NotFoundError,
    PageAnalyticsResponse,
    PayloadTooLargeError,
    PermissionDeniedError,
    PostEventsResponse,
    PublishableKeyResponse,
    RateLimitError,
    SessionMoodError,
    UsageResponse,
    WebhookCreated,
    WebhookDeleted,
    WebhookDelivery,
    WebhookDeliveryList,
    WebhookList,
)

BASE = "http://sm.test"
KEY = "sm_" + "4c9174cbe8250bb1d09ae779c168a4399e765819da244cbf"
NOW = 1_800_000_000.0

MOOD = {
    "session_id": "user_abc",
    "mood": "frustrated",
    "confidence": 0.89,
    "signals": ["rage_click_detected", "repeated_errors"],
    "suggested_action": "show_live_chat",
    "event_count": 6,
    "updated_at": "2026-05-04T10:00:00.000Z",
}
POSTED = {
    "session_id": "user_abc",
    "events_stored": 2,
    "total_events": 6,
    "current_mood": "neutral",
}
NO_RETRY = {"X-Should-Retry": "false"}
QUOTA_429 = {
    "error": "Rate limit exceeded",
    "plan": "starter",
    "limit": 5000,
    "reset_at": "2026-06-01T00:00:00.000Z",
}


def _responses(*steps: Any, ok: dict[str, Any] = MOOD) -> list[Any]:
    """respx side effects: an int is a status (200 answers ``ok``), anything else as is."""
    out: list[Any] = []
    for step in steps:
        if isinstance(step, int):
            body = ok if step < 300 else {"error": f"status {step}"}
            out.append(httpx.Response(step, json=body))
        elif isinstance(step, type):
            out.append(step("boom"))
        else:
            out.append(step)
    return out


def _sent_json(route: respx.Route, index: int = -1) -> Any:
    return json.loads(route.calls[index].request.content)


pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(autouse=True)
def _no_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SESSIONMOOD_API_KEY", raising=False)
    monkeypatch.delenv("SESSIONMOOD_BASE_URL", raising=False)


@pytest.fixture
def api() -> Iterator[respx.MockRouter]:
    with respx.mock(base_url=BASE, assert_all_called=False) as router:
        yield router


@pytest.fixture
def sleeps() -> list[float]:
    return []


def _patch_clock(
    monkeypatch: pytest.MonkeyPatch, client: AsyncSessionMoodClient, sleeps: list[float]
) -> None:
    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)

    monkeypatch.setattr(client, "_sleep", sleep)
    monkeypatch.setattr(client, "_random", lambda: 0.0)
    monkeypatch.setattr(client, "_now", lambda: NOW)


@pytest.fixture
async def client(
    monkeypatch: pytest.MonkeyPatch, sleeps: list[float]
) -> AsyncIterator[AsyncSessionMoodClient]:
    async with AsyncSessionMoodClient(KEY, base_url=BASE) as c:
        _patch_clock(monkeypatch, c, sleeps)
        yield c


# -- every method ---------------------------------------------------------------


async def test_send_events_posts_the_batch(
    api: respx.MockRouter, client: AsyncSessionMoodClient
) -> None:
    route = api.post("/v1/sessions/user_abc/events").respond(200, json=POSTED)
    result = await client.send_events(
        "user_abc", [ClickEvent(x=240, y=580, ts=1746352800), {"type": "idle", "duration_ms": 4500}]
    )
    assert isinstance(result, PostEventsResponse)
    assert result.total_events == 6
    request = route.calls.last.request
    assert request.headers["X-Api-Key"] == KEY
    assert request.headers["Content-Type"] == "application/json"
    body = _sent_json(route)
    assert body["events"] == [
        {"type": "click", "x": 240.0, "y": 580.0, "ts": 1746352800.0},
        {"type": "idle", "duration_ms": 4500},
    ]
    # A fresh uuid4, sent both ways the server accepts it.
    assert uuid.UUID(body["batch_id"]).version == 4
    assert request.headers["Idempotency-Key"] == body["batch_id"]


async def test_send_events_uses_the_given_batch_id(
    api: respx.MockRouter, client: AsyncSessionMoodClient
) -> None:
    route = api.post("/v1/sessions/user_abc/events").respond(200, json=POSTED)
    await client.send_events("user_abc", [{"type": "focus"}], batch_id="order-42")
    assert _sent_json(route)["batch_id"] == "order-42"
    assert route.calls.last.request.headers["Idempotency-Key"] == "order-42"


async def test_send_events_rejects_an_empty_batch(
    api: respx.MockRouter, client: AsyncSessionMoodClient
) -> None:
    route = api.route()
    with pytest.raises(ValueError, match="at least one event"):
        await client.send_events("user_abc", [])
    with pytest.raises(TypeError, match="list of events"):
        await client.send_events("user_abc", {"type": "click"})  # type: ignore[arg-type]
    assert not route.called


async def test_get_mood(api: respx.MockRouter, client: AsyncSessionMoodClient) -> None:
    api.get("/v1/sessions/user_abc/mood").respond(200, json=MOOD)
    mood = await client.get_mood("user_abc")
    assert isinstance(mood, MoodResponse)
    assert (mood.mood, mood.suggested_action, mood.confidence) == (
        "frustrated",
        "show_live_chat",
        0.89,
    )
    assert mood.updated_at == datetime(2026, 5, 4, 10, tzinfo=UTC)


async def test_send_feedback_sends_only_given_fields(
    api: respx.MockRouter, client: AsyncSessionMoodClient
) -> None:
    route = api.post("/v1/sessions/user_abc/feedback").respond(
        200, json={"session_id": "user_abc", "feedback_recorded": True}
    )
    result = await client.send_feedback("user_abc", "show_live_chat")
    assert isinstance(result, FeedbackResponse)
    assert result.feedback_recorded is True
    assert _sent_json(route) == {"action_taken": "show_live_chat"}
    await client.send_feedback("user_abc", "show_tooltip", was_helpful=False, notes="closed it")
    assert _sent_json(route) == {
        "action_taken": "show_tooltip",
        "was_helpful": False,
        "notes": "closed it",
    }


async def test_get_analytics(api: respx.MockRouter, client: AsyncSessionMoodClient) -> None:
    api.get("/v1/analytics/moods").respond(
        200,
        json={
            "total_sessions": 3,
            "feedback_count": 1,
            "mood_distribution": [{"mood": "browsing", "count": 3, "percentage": 100.0}],
        },
    )
    analytics = await client.get_analytics()
    assert isinstance(analytics, AnalyticsResponse)
    assert analytics.mood_distribution[0].mood == "browsing"


async def test_delete_session(api: respx.MockRouter, client: AsyncSessionMoodClient) -> None:
    route = api.delete("/v1/sessions/user_abc").respond(
        200,
        json={"session_id": "user_abc", "deleted": True, "message": "Session data erased."},
    )
    result = await client.delete_session("user_abc")
    assert isinstance(result, DeleteSessionResponse)
    assert result.deleted is True
    assert route.calls.last.request.headers["X-Api-Key"] == KEY


async def test_export_events(api: respx.MockRouter, client: AsyncSessionMoodClient) -> None:
    api.get("/v1/sessions/user_abc/events").respond(
        200,
        json={
            "session_id": "user_abc",
            "event_count": 1,
            "events": [{"seq": 1, "type": "error", "ts": 1.0, "received_at": 2.0, "message": "x"}],
        },
    )
    export = await client.export_events("user_abc")
    assert isinstance(export, ExportEventsResponse)
    assert export.events[0].type == "error"
    assert export.events[0].model_extra == {"message": "x"}


async def test_get_usage(api: respx.MockRouter, client: AsyncSessionMoodClient) -> None:
    api.get("/v1/usage").respond(
        200,
        json={
            "plan": "starter",
            "month": "2026-05",
            "sessions_used": 12,
            "limit": 5000,
            "remaining": 4988,
            "overage": 0,
            "reset_at": "2026-06-01T00:00:00Z",
        },
    )
    usage = await client.get_usage()
    assert isinstance(usage, UsageResponse)
    assert usage.remaining == 4988


async def test_health_sends_no_api_key(
    api: respx.MockRouter, client: AsyncSessionMoodClient
) -> None:
    route = api.get("/health").respond(200, json={"status": "ok", "version": "1.0.0"})
    health = await client.health()
    assert isinstance(health, HealthResponse)
    assert health.status == "ok"
    assert "X-Api-Key" not in route.calls.last.request.headers


async def test_generate_key_needs_no_api_key(api: respx.MockRouter) -> None:
    route = api.post("/v1/keys/generate").respond(
        201,
        json={
            "api_key": KEY,
            "customer": "Acme Inc",
            "email": "dev@acme.com",
            "plan": "growth",
            "limits": "50,000 sessions/month",
            "message": "Store this key safely - it won't be shown again.",
        },
    )
    result = await AsyncSessionMoodClient.generate_key(
        "Acme Inc", email="dev@acme.com", plan="growth", base_url=BASE
    )
    assert isinstance(result, KeyGenerateResponse)
    assert result.api_key == KEY
    assert _sent_json(route) == {
        "customer_name": "Acme Inc",
        "email": "dev@acme.com",
        "plan": "growth",
    }
    assert "X-Api-Key" not in route.calls.last.request.headers


async def test_generate_key_reads_base_url_from_env(
    api: respx.MockRouter, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SESSIONMOOD_BASE_URL", BASE)
    route = api.post("/v1/keys/generate").respond(
        201,
        json={
            "api_key": KEY,
            "customer": "Solo",
            "email": None,
            "plan": "starter",
            "limits": "5,000 sessions/month",
            "message": "Store this key safely.",
        },
    )
    assert (await AsyncSessionMoodClient.generate_key("Solo")).plan == "starter"
    assert _sent_json(route) == {"customer_name": "Solo", "plan": "starter"}


# -- session ids ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("session_id", "segment"),
    [
        ("user_abc", "user_abc"),
        ("a b/c?d#e%f", "a%20b%2Fc%3Fd%23e%25f"),
        ("ünï", "%C3%BCn%C3%AF"),
        # Left alone, httpx would collapse these as dot-segments.
        (".", "%2E"),
        ("..", "%2E%2E"),
    ],
)
async def test_session_ids_are_url_encoded(
    api: respx.MockRouter, client: AsyncSessionMoodClient, session_id: str, segment: str
) -> None:
    route = api.route().respond(200, json=MOOD)
    await client.get_mood(session_id)
    assert route.calls.last.request.url.raw_path == f"/v1/sessions/{segment}/mood".encode()


async def test_empty_session_id_is_rejected(
    api: respx.MockRouter, client: AsyncSessionMoodClient
) -> None:
    route = api.route()
    with pytest.raises(ValueError, match="session_id"):
        await client.get_mood("")
    assert not route.called


# -- errors ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "error_class"),
    [
        (400, BadRequestError),
        (401, AuthenticationError),
        (403, PermissionDeniedError),
        (404, NotFoundError),
        (409, ConflictError),
        (413, PayloadTooLargeError),
        (418, APIStatusError),
        (429, RateLimitError),
        (500, InternalServerError),
        (503, InternalServerError),
    ],
)
async def test_status_errors_map_to_classes(
    api: respx.MockRouter,
    client: AsyncSessionMoodClient,
    status: int,
    error_class: type[APIStatusError],
) -> None:
    client.max_retries = 0
    body = {"error": "Session not found", "session_id": "user_abc"}
    api.get("/v1/sessions/user_abc/mood").respond(status, json=body)
    with pytest.raises(APIStatusError) as caught:
        await client.get_mood("user_abc")
    error = caught.value
    assert type(error) is error_class
    assert isinstance(error, SessionMoodError)
    assert (error.status_code, error.error, error.body) == (status, "Session not found", body)
    assert error.response.status_code == status
    assert f"HTTP {status}: Session not found" in str(error)


async def test_request_id_comes_from_body_or_header(
    api: respx.MockRouter, client: AsyncSessionMoodClient
) -> None:
    client.max_retries = 0
    route = api.get("/v1/sessions/user_abc/mood")
    route.side_effect = [
        httpx.Response(
            500,
            json={"error": "Internal Server Error", "request_id": "req_7f3a2b"},
            headers={"X-Request-Id": "req_7f3a2b"},
        ),
        httpx.Response(500, text="oops", headers={"X-Request-Id": "req_header"}),
    ]
    with pytest.raises(InternalServerError) as first:
        await client.get_mood("user_abc")
    assert first.value.request_id == "req_7f3a2b"
    assert "request_id=req_7f3a2b" in str(first.value)
    with pytest.raises(InternalServerError) as second:
        await client.get_mood("user_abc")
    assert second.value.request_id == "req_header"


async def test_non_json_error_body_is_kept_as_text(
    api: respx.MockRouter, client: AsyncSessionMoodClient
) -> None:
    client.max_retries = 0
    api.get("/v1/sessions/user_abc/mood").respond(502, text="<html>Bad gateway</html>")
    with pytest.raises(InternalServerError) as caught:
        await client.get_mood("user_abc")
    assert caught.value.body == "<html>Bad gateway</html>"
    assert caught.value.error is None


async def test_rate_limit_error_carries_quota_fields(
    api: respx.MockRouter, client: AsyncSessionMoodClient
) -> None:
    api.get("/v1/sessions/user_abc/mood").respond(429, json=QUOTA_429)
    with pytest.raises(RateLimitError) as caught:
        await client.get_mood("user_abc")
    assert (caught.value.plan, caught.value.limit) == ("starter", 5000)
    assert caught.value.reset_at == datetime(2026, 6, 1, tzinfo=UTC)


async def test_connection_error_is_translated(
    api: respx.MockRouter, client: AsyncSessionMoodClient
) -> None:
    client.max_retries = 0
    api.get("/v1/sessions/user_abc/mood").mock(side_effect=httpx.ConnectError("refused"))
    with pytest.raises(APIConnectionError) as caught:
        await client.get_mood("user_abc")
    assert type(caught.value) is APIConnectionError
    assert isinstance(caught.value.__cause__, httpx.ConnectError)
    assert caught.value.request.url.path == "/v1/sessions/user_abc/mood"


async def test_timeout_is_translated(api: respx.MockRouter, client: AsyncSessionMoodClient) -> None:
    client.max_retries = 0
    api.get("/v1/sessions/user_abc/mood").mock(side_effect=httpx.ConnectTimeout("slow"))
    with pytest.raises(APITimeoutError) as caught:
        await client.get_mood("user_abc")
    assert isinstance(caught.value, APIConnectionError)
    assert isinstance(caught.value.__cause__, httpx.ConnectTimeout)


@pytest.mark.parametrize(
    "response",
    [
        httpx.Response(200, json={"unexpected": True}),
        httpx.Response(200, text="<html>captive portal</html>"),
    ],
)
async def test_unexpected_success_body_raises_validation_error(
    api: respx.MockRouter, client: AsyncSessionMoodClient, response: httpx.Response
) -> None:
    api.get("/v1/sessions/user_abc/mood").mock(return_value=response)
    with pytest.raises(APIResponseValidationError) as caught:
        await client.get_mood("user_abc")
    assert caught.value.status_code == 200
    assert isinstance(caught.value.__cause__, ValidationError)


# -- retries --------------------------------------------------------------------

# (steps the server/transport goes through, sleeps expected, error expected or None).
# _random is patched to 0, so the jitter factor is 1 and delays are exact.
RETRY_TABLE: list[tuple[str, list[Any], list[float], type[Exception] | None]] = [
    ("503-then-ok", [503, 200], [0.5], None),
    ("500-502-then-ok", [500, 502, 200], [0.5, 1.0], None),
    ("408-then-ok", [408, 200], [0.5], None),
    ("409-then-ok", [409, 200], [0.5], None),
    ("connect-error-then-ok", [httpx.ConnectError, 200], [0.5], None),
    ("read-timeout-then-ok", [httpx.ReadTimeout, 200], [0.5], None),
    ("reset-then-500-then-ok", [httpx.ReadError, 500, 200], [0.5, 1.0], None),
    ("5xx-gives-up", [503, 503, 503], [0.5, 1.0], InternalServerError),
    ("timeouts-give-up", [httpx.ReadTimeout] * 3, [0.5, 1.0], APITimeoutError),
    ("bad-header-not-retried", [httpx.LocalProtocolError], [], APIConnectionError),
    ("400-not-retried", [400], [], BadRequestError),
    ("401-not-retried", [401], [], AuthenticationError),
    ("404-not-retried", [404], [], NotFoundError),
    ("413-not-retried", [413], [], PayloadTooLargeError),
    ("429-without-retry-after-not-retried", [429], [], RateLimitError),
    (
        "x-should-retry-false-not-retried",
        [httpx.Response(409, json={"error": "Idempotency key reused"}, headers=NO_RETRY)],
        [],
        ConflictError,
    ),
]


@pytest.mark.parametrize(
    ("steps", "delays", "error"), [row[1:] for row in RETRY_TABLE], ids=[r[0] for r in RETRY_TABLE]
)
async def test_retry_table(
    api: respx.MockRouter,
    client: AsyncSessionMoodClient,
    sleeps: list[float],
    steps: list[Any],
    delays: list[float],
    error: type[Exception] | None,
) -> None:
    route = api.get("/v1/sessions/user_abc/mood").mock(side_effect=_responses(*steps))
    if error is None:
        assert (await client.get_mood("user_abc")).mood == "frustrated"
    else:
        with pytest.raises(error):
            await client.get_mood("user_abc")
    assert sleeps == delays
    assert route.call_count == len(delays) + 1


async def test_max_retries_zero_does_not_retry(
    api: respx.MockRouter, client: AsyncSessionMoodClient, sleeps: list[float]
) -> None:
    client.max_retries = 0
    route = api.get("/v1/sessions/user_abc/mood").mock(side_effect=_responses(503, 200))
    with pytest.raises(InternalServerError):
        await client.get_mood("user_abc")
    assert (sleeps, route.call_count) == ([], 1)


async def test_backoff_is_capped_and_jittered(
    api: respx.MockRouter,
    client: AsyncSessionMoodClient,
    sleeps: list[float],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    client.max_retries = 6
    monkeypatch.setattr(client, "_random", lambda: 1.0)  # the largest jitter: x0.75
    api.get("/v1/sessions/user_abc/mood").mock(side_effect=_responses(*[500] * 6, 200))
    await client.get_mood("user_abc")
    assert sleeps == [0.375, 0.75, 1.5, 3.0, 6.0, 6.0]


@pytest.mark.parametrize(
    ("status", "retry_after", "delay"),
    [
        (429, "3", 3.0),
        (503, "1.5", 1.5),
        (503, "0", 0.0),
        (429, "3600", 60.0),  # capped
        (503, "soon", 0.5),  # unparseable: plain backoff
    ],
)
async def test_retry_after_seconds_is_honoured(
    api: respx.MockRouter,
    client: AsyncSessionMoodClient,
    sleeps: list[float],
    status: int,
    retry_after: str,
    delay: float,
) -> None:
    throttled = httpx.Response(status, json={"error": "busy"}, headers={"Retry-After": retry_after})
    api.get("/v1/sessions/user_abc/mood").mock(side_effect=_responses(throttled, 200))
    await client.get_mood("user_abc")
    assert sleeps == [delay]


@pytest.mark.parametrize(
    ("offset", "delay"),
    [(7.0, 7.0), (-30.0, 0.0), (86_400.0, 60.0)],
    ids=["future", "past", "capped"],
)
async def test_retry_after_http_date_is_honoured(
    api: respx.MockRouter,
    client: AsyncSessionMoodClient,
    sleeps: list[float],
    offset: float,
    delay: float,
) -> None:
    when = format_datetime(datetime.fromtimestamp(NOW + offset, UTC), usegmt=True)
    throttled = httpx.Response(429, json={"error": "slow down"}, headers={"Retry-After": when})
    api.get("/v1/sessions/user_abc/mood").mock(side_effect=_responses(throttled, 200))
    await client.get_mood("user_abc")
    assert sleeps == [delay]


async def test_quota_429_is_not_retried(
    api: respx.MockRouter, client: AsyncSessionMoodClient, sleeps: list[float]
) -> None:
    quota = httpx.Response(429, json=QUOTA_429, headers={"Retry-After": "1"})
    route = api.get("/v1/sessions/user_abc/mood").mock(side_effect=_responses(quota, 200))
    with pytest.raises(RateLimitError) as caught:
        await client.get_mood("user_abc")
    assert caught.value.plan == "starter"
    assert (sleeps, route.call_count) == ([], 1)


async def test_idempotency_key_is_reused_across_retries(
    api: respx.MockRouter, client: AsyncSessionMoodClient, sleeps: list[float]
) -> None:
    route = api.post("/v1/sessions/user_abc/events").mock(
        side_effect=_responses(503, httpx.ReadTimeout, 200, ok=POSTED)
    )
    await client.send_events("user_abc", [{"type": "rage_click", "x": 1, "y": 2}])
    assert route.call_count == 3
    keys = {call.request.headers["Idempotency-Key"] for call in route.calls}
    batch_ids = {json.loads(call.request.content)["batch_id"] for call in route.calls}
    assert len(keys) == 1
    assert keys == batch_ids
    assert len({call.request.content for call in route.calls}) == 1
    assert sleeps == [0.5, 1.0]


async def test_each_send_events_call_gets_a_fresh_key(
    api: respx.MockRouter, client: AsyncSessionMoodClient
) -> None:
    route = api.post("/v1/sessions/user_abc/events").respond(200, json=POSTED)
    await client.send_events("user_abc", [{"type": "click"}])
    await client.send_events("user_abc", [{"type": "click"}])
    first, second = (call.request.headers["Idempotency-Key"] for call in route.calls)
    assert first != second


async def test_default_sleep_hook_waits(monkeypatch: pytest.MonkeyPatch) -> None:
    waited: list[float] = []

    async def sleep(seconds: float) -> None:
        waited.append(seconds)

    monkeypatch.setattr("sessionmood_client._client.anyio.sleep", sleep)
    async with AsyncSessionMoodClient(KEY, base_url=BASE) as c:
        await c._sleep(0.25)
    assert waited == [0.25]


# -- configuration --------------------------------------------------------------


async def test_key_and_base_url_from_environment(
    api: respx.MockRouter, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SESSIONMOOD_API_KEY", "sm_from_env")
    monkeypatch.setenv("SESSIONMOOD_BASE_URL", BASE + "/")
    route = api.get("/v1/usage").respond(404, json={"error": "nope"})
    async with AsyncSessionMoodClient() as c:
        assert c.base_url == BASE
        with pytest.raises(NotFoundError):
            await c.get_usage()
    assert route.calls.last.request.headers["X-Api-Key"] == "sm_from_env"


async def test_arguments_beat_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SESSIONMOOD_API_KEY", "sm_from_env")
    monkeypatch.setenv("SESSIONMOOD_BASE_URL", "http://env.test")
    async with AsyncSessionMoodClient("sm_from_arg", base_url=BASE) as c:
        assert c.base_url == BASE
        assert c._api_key == "sm_from_arg"


async def test_default_base_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SESSIONMOOD_API_KEY", KEY)
    async with AsyncSessionMoodClient() as c:
        assert c.base_url == "http://127.0.0.1:8000"


async def test_missing_key_names_the_variable() -> None:
    with pytest.raises(SessionMoodError, match="SESSIONMOOD_API_KEY"):
        AsyncSessionMoodClient()
    with pytest.raises(SessionMoodError, match="SESSIONMOOD_API_KEY"):
        AsyncSessionMoodClient("   ")


async def test_invalid_base_url_is_rejected() -> None:
    with pytest.raises(SessionMoodError, match="SESSIONMOOD_BASE_URL"):
        AsyncSessionMoodClient(KEY, base_url="localhost:8000")


async def test_key_never_shows_in_repr_or_logs(
    api: respx.MockRouter,
    client: AsyncSessionMoodClient,
    caplog: pytest.LogCaptureFixture,
) -> None:
    assert repr(client) == f"AsyncSessionMoodClient(base_url='{BASE}', api_key='sm_4c…')"
    api.get("/v1/sessions/user_abc/mood").mock(side_effect=_responses(503, 200))
    with caplog.at_level(logging.DEBUG):
        await client.get_mood("user_abc")
    assert "Retrying GET /v1/sessions/user_abc/mood in 0.50s (retry 1 of 2)" in caplog.text
    assert KEY not in caplog.text
    assert KEY[5:] not in caplog.text


async def test_timeout_and_user_agent_are_sent(
    api: respx.MockRouter, client: AsyncSessionMoodClient
) -> None:
    route = api.get("/health").respond(200, json={"status": "ok", "version": "1.0.0"})
    await client.health()
    request = route.calls.last.request
    assert request.extensions["timeout"] == DEFAULT_TIMEOUT.as_dict()
    assert request.headers["User-Agent"].startswith("sessionmood-python/")
    async with AsyncSessionMoodClient(KEY, base_url=BASE, timeout=3) as short:
        await short.health()
    assert route.calls.last.request.extensions["timeout"] == httpx.Timeout(3).as_dict()


# -- the HTTP client ------------------------------------------------------------


async def test_injected_http_client_is_used_and_left_open() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=MOOD)

    http = httpx.AsyncClient(transport=httpx.MockTransport(handler), headers={"X-Trace": "t-1"})
    async with AsyncSessionMoodClient(KEY, base_url=BASE, http_client=http) as c:
        assert (await c.get_mood("user_abc")).mood == "frustrated"
    assert not http.is_closed
    assert seen[0].headers["X-Trace"] == "t-1"
    assert seen[0].headers["X-Api-Key"] == KEY
    await http.aclose()


async def test_context_manager_closes_owned_client() -> None:
    async with AsyncSessionMoodClient(KEY, base_url=BASE) as c:
        assert not c.is_closed
    assert c.is_closed


# -- batching helper ------------------------------------------------------------


async def test_tracker_flushes_when_full_and_on_exit(
    api: respx.MockRouter, client: AsyncSessionMoodClient
) -> None:
    route = api.post("/v1/sessions/user_abc/events").respond(200, json=POSTED)
    async with client.tracker("user_abc", max_batch=2) as tracker:
        assert await tracker.track("click", x=1, y=2, ts=10) is None
        flushed = await tracker.add(ClickEvent(ts=11))
        assert isinstance(flushed, PostEventsResponse)
        assert route.call_count == 1
        await tracker.track("idle", duration_ms=4500, ts=12)
        assert len(tracker) == 1
    assert route.call_count == 2
    assert [e["ts"] for e in _sent_json(route, 0)["events"]] == [10.0, 11.0]
    assert _sent_json(route, 1)["events"] == [{"type": "idle", "duration_ms": 4500.0, "ts": 12.0}]
    assert tracker.last_response is not None
    assert len(tracker) == 0


async def test_tracker_stamps_missing_ts(
    api: respx.MockRouter, client: AsyncSessionMoodClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    route = api.post("/v1/sessions/user_abc/events").respond(200, json=POSTED)
    tracker = client.tracker("user_abc")
    monkeypatch.setattr(tracker, "_now", lambda: 123.0)
    await tracker.track("focus")
    await tracker.add({"type": "blur", "ts": 124})
    await tracker.flush()
    assert _sent_json(route)["events"] == [
        {"type": "focus", "ts": 123.0},
        {"type": "blur", "ts": 124.0},
    ]


async def test_tracker_rejects_invalid_events_when_tracked(
    api: respx.MockRouter, client: AsyncSessionMoodClient
) -> None:
    route = api.route()
    tracker = client.tracker("user_abc")
    with pytest.raises(ValidationError):
        await tracker.track("page_visit")  # type: ignore[arg-type]
    with pytest.raises(ValidationError):
        await tracker.add({"type": "click", "x": "240"})
    assert len(tracker) == 0
    assert await tracker.flush() is None
    assert not route.called
    with pytest.raises(ValueError, match="max_batch"):
        client.tracker("user_abc", max_batch=0)


async def test_tracker_resends_a_failed_batch_under_the_same_id(
    api: respx.MockRouter, client: AsyncSessionMoodClient
) -> None:
    client.max_retries = 0
    route = api.post("/v1/sessions/user_abc/events").mock(
        side_effect=_responses(500, 200, 200, ok=POSTED)
    )
    tracker = client.tracker("user_abc")
    await tracker.track("error", message="Payment failed", ts=1)
    with pytest.raises(InternalServerError):
        await tracker.flush()
    await tracker.track("back_nav", ts=2)
    assert len(tracker) == 2
    await tracker.flush()
    failed, replay, fresh = (_sent_json(route, i) for i in range(3))
    # The replay is the failed batch, byte for byte; newer events go in a new batch.
    assert replay == failed
    assert [e["type"] for e in fresh["events"]] == ["back_nav"]
    assert fresh["batch_id"] != failed["batch_id"]
    assert len(tracker) == 0


async def test_tracker_exit_after_an_error_keeps_that_error(
    api: respx.MockRouter, client: AsyncSessionMoodClient
) -> None:
    client.max_retries = 0
    route = api.post("/v1/sessions/user_abc/events").respond(500, json={"error": "down"})
    with pytest.raises(RuntimeError, match="handler failed"):
        async with client.tracker("user_abc") as t:
            await t.track("click", ts=1)
            raise RuntimeError("handler failed")
    assert route.call_count == 1  # the flush was still attempted


# -- keys, analytics and webhooks ----------------------------------------------

WEBHOOK = {
    "id": "wh_1f2e3d4c5b6a7980",
    "url": "https://example.com/hooks/sessionmood",
    "moods": ["frustrated", "confused"],
    "created_at": "2026-05-04T10:00:00.000Z",
}
DELIVERY = {
    "id": 7,
    "change_id": 42,
    "session_id": "user_abc",
    "status": "failed",
    "attempts": 3,
    "last_status_code": 500,
    "last_error": "HTTP 500",
    "latency_ms": 12.5,
    "created_at": "2026-05-04T10:00:00.000Z",
    "delivered_at": None,
    "next_attempt_at": None,
}


async def test_create_publishable_key(
    api: respx.MockRouter, client: AsyncSessionMoodClient
) -> None:
    route = api.post("/v1/keys/publishable").respond(
        201,
        json={
            "publishable_key": "pk_" + "a" * 48,
            "allowed_origins": ["https://shop.example"],
            "message": "Embed this key in tracker.js.",
        },
    )
    result = await client.create_publishable_key(("https://shop.example",))
    assert isinstance(result, PublishableKeyResponse)
    assert result.publishable_key.startswith("pk_")
    assert _sent_json(route) == {"allowed_origins": ["https://shop.example"]}
    assert route.calls.last.request.headers["X-Api-Key"] == KEY


async def test_create_publishable_key_rejects_bad_origin_lists(
    api: respx.MockRouter, client: AsyncSessionMoodClient
) -> None:
    route = api.route()
    with pytest.raises(TypeError, match="list of strings"):
        await client.create_publishable_key("https://shop.example")
    with pytest.raises(ValueError, match="at least one"):
        await client.create_publishable_key([])
    assert not route.called


async def test_get_page_analytics_sends_the_time_range(
    api: respx.MockRouter, client: AsyncSessionMoodClient
) -> None:
    route = api.get("/v1/analytics/pages").respond(
        200,
        json={
            "since": "2026-05-01T00:00:00Z",
            "until": None,
            "pages": [
                {
                    "url": "/checkout",
                    "sessions": 4,
                    "mood_distribution": [{"mood": "frustrated", "count": 1, "percentage": 25.0}],
                    "frustration_rate": 0.25,
                }
            ],
        },
    )
    paris = timezone(timedelta(hours=2))
    result = await client.get_page_analytics(since=datetime(2026, 5, 1, 2, tzinfo=paris))
    assert isinstance(result, PageAnalyticsResponse)
    assert result.pages[0].frustration_rate == 0.25
    assert result.since == datetime(2026, 5, 1, tzinfo=UTC)
    # Sent in UTC with a "Z": a "+02:00" would need escaping in a query string.
    assert dict(route.calls.last.request.url.params) == {"since": "2026-05-01T00:00:00Z"}
    await client.get_page_analytics(since=datetime(2026, 5, 1), until=1_777_000_000.5)
    assert dict(route.calls.last.request.url.params) == {
        "since": "2026-05-01T00:00:00Z",  # naive means UTC
        "until": "1777000000.5",
    }


async def test_get_action_analytics(api: respx.MockRouter, client: AsyncSessionMoodClient) -> None:
    route = api.get("/v1/analytics/actions").respond(
        200,
        json={
            "since": None,
            "until": None,
            "actions": [
                {
                    "mood": "frustrated",
                    "action": "show_live_chat",
                    "taken": 3,
                    "helpful": 2,
                    "not_helpful": 1,
                    "helpful_rate": 0.6667,
                }
            ],
        },
    )
    result = await client.get_action_analytics()
    assert isinstance(result, ActionAnalyticsResponse)
    assert result.actions[0].helpful_rate == 0.6667
    assert route.calls.last.request.url.query == b""
    await client.get_action_analytics(until=1_777_000_000)
    assert dict(route.calls.last.request.url.params) == {"until": "1777000000"}


@pytest.mark.parametrize(
    ("value", "error"),
    [(True, TypeError), ("2026-05-01", TypeError), (float("nan"), ValueError)],
    ids=["bool", "str", "nan"],
)
async def test_time_range_rejects_bad_values(
    api: respx.MockRouter, client: AsyncSessionMoodClient, value: Any, error: type[Exception]
) -> None:
    route = api.route()
    with pytest.raises(error, match="since"):
        await client.get_page_analytics(since=value)
    assert not route.called


async def test_create_webhook(api: respx.MockRouter, client: AsyncSessionMoodClient) -> None:
    route = api.post("/v1/webhooks").respond(201, json={**WEBHOOK, "secret": "whsec_s3cret"})
    created = await client.create_webhook(WEBHOOK["url"], moods=["frustrated", "confused"])
    assert isinstance(created, WebhookCreated)
    assert (created.id, created.secret) == (WEBHOOK["id"], "whsec_s3cret")
    assert _sent_json(route) == {"url": WEBHOOK["url"], "moods": ["frustrated", "confused"]}
    await client.create_webhook(WEBHOOK["url"])
    assert _sent_json(route) == {"url": WEBHOOK["url"]}


async def test_create_webhook_validates_moods(
    api: respx.MockRouter, client: AsyncSessionMoodClient
) -> None:
    route = api.route()
    with pytest.raises(ValueError, match="unknown mood"):
        await client.create_webhook("https://example.com/h", moods=["angry"])  # type: ignore[list-item]
    with pytest.raises(TypeError, match="list of strings"):
        await client.create_webhook("https://example.com/h", moods="frustrated")  # type: ignore[arg-type]
    assert not route.called


async def test_list_webhooks(api: respx.MockRouter, client: AsyncSessionMoodClient) -> None:
    api.get("/v1/webhooks").respond(200, json={"webhooks": [WEBHOOK, {**WEBHOOK, "moods": None}]})
    listed = await client.list_webhooks()
    assert isinstance(listed, WebhookList)
    assert [w.moods for w in listed.webhooks] == [["frustrated", "confused"], None]
    assert listed.webhooks[0].created_at == datetime(2026, 5, 4, 10, tzinfo=UTC)


async def test_delete_webhook_quotes_the_id(
    api: respx.MockRouter, client: AsyncSessionMoodClient
) -> None:
    route = api.route().respond(200, json={"id": "wh/1", "deleted": True})
    deleted = await client.delete_webhook("wh/1")
    assert isinstance(deleted, WebhookDeleted)
    assert deleted.deleted is True
    request = route.calls.last.request
    assert (request.method, request.url.raw_path) == ("DELETE", b"/v1/webhooks/wh%2F1")
    with pytest.raises(ValueError, match="webhook_id"):
        await client.delete_webhook("")


async def test_list_webhook_deliveries(
    api: respx.MockRouter, client: AsyncSessionMoodClient
) -> None:
    api.get(f"/v1/webhooks/{WEBHOOK['id']}/deliveries").respond(
        200, json={"deliveries": [DELIVERY]}
    )
    result = await client.list_webhook_deliveries(str(WEBHOOK["id"]))
    assert isinstance(result, WebhookDeliveryList)
    delivery = result.deliveries[0]
    assert isinstance(delivery, WebhookDelivery)
    assert (delivery.id, delivery.status, delivery.last_status_code) == (7, "failed", 500)
    assert delivery.delivered_at is None


async def test_webhooks_need_a_paid_plan(
    api: respx.MockRouter, client: AsyncSessionMoodClient
) -> None:
    api.get("/v1/webhooks").respond(403, json={"error": "Webhooks need the growth or pro plan"})
    with pytest.raises(PermissionDeniedError, match="growth or pro"):
        await client.list_webhooks()


# -- mood stream ----------------------------------------------------------------


def _change(change_id: int, mood: str = "frustrated") -> dict[str, Any]:
    return {
        "id": change_id,
        "session_id": "user_abc",
        "previous_mood": "neutral",
        "mood": mood,
        "confidence": 0.8,
        "signals": ["rage_click_detected"],
        "suggested_action": "show_live_chat",
        "url": "/checkout",
        "occurred_at": "2026-05-04T10:00:00.000Z",
    }


def _message(change_id: int, mood: str = "frustrated", eol: str = "\n") -> bytes:
    lines = [
        f"id: {change_id}",
        "event: mood.changed",
        f"data: {json.dumps(_change(change_id, mood))}",
    ]
    return (eol.join(lines) + eol + eol).encode()


class Chunks(httpx.SyncByteStream, httpx.AsyncByteStream):
    """A response body that arrives in these chunks, then ends or fails with ``error``."""

    def __init__(self, *chunks: bytes, error: Exception | None = None) -> None:
        self.chunks = chunks
        self.error = error
        self.closed = False

    def __iter__(self) -> Iterator[bytes]:
        yield from self.chunks
        if self.error is not None:
            raise self.error

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for chunk in self.chunks:
            yield chunk
        if self.error is not None:
            raise self.error

    def close(self) -> None:
        self.closed = True

    async def aclose(self) -> None:
        self.closed = True


def _sse(*chunks: bytes, error: Exception | None = None) -> httpx.Response:
    return httpx.Response(
        200,
        headers={"Content-Type": "text/event-stream; charset=utf-8"},
        stream=Chunks(*chunks, error=error),
    )


async def test_stream_moods_parses_the_event_stream(
    api: respx.MockRouter, client: AsyncSessionMoodClient
) -> None:
    # Pretty-printed, so that each line can go in a data: field of its own.
    data = "".join(
        f"data: {line}\n" for line in json.dumps(_change(2, "confused"), indent=2).splitlines()
    )
    route = api.get("/v1/stream/moods").mock(
        side_effect=[
            _sse(
                b"\xef\xbb\xbfretry: 2000\n\n",
                b": heartbeat\n\n",
                _message(1, eol="\r\n"),
                # One message over several chunks, a CRLF split between two,
                # its data over several lines (joined with "\n").
                b"id: 2\r",
                f"\nevent: mood.changed\n{data}".encode(),
                b"\n: the end\n\n",
                b"id: 3\nevent: something.new\ndata: {}\n\n",
                b'id: 4\nevent: mood.changed\ndata: {"cut": ',  # dropped: never finished
            ),
            httpx.Response(401, json={"error": "Invalid API key"}),
        ]
    )
    async with client.stream_moods() as stream:
        first = await anext(stream)
        assert isinstance(first, MoodChange)
        assert (first.id, first.mood, first.url) == (1, "frustrated", "/checkout")
        assert stream.last_event_id == "1"
        second = await anext(stream)
        assert (second.id, second.mood) == (2, "confused")
        with pytest.raises(AuthenticationError):
            await anext(stream)
    request = route.calls[0].request
    assert request.headers["Accept"] == "text/event-stream"
    assert request.headers["X-Api-Key"] == KEY
    assert "Last-Event-ID" not in request.headers
    # A connect timeout, but none for reading: a quiet stream is normal.
    timeout = request.extensions["timeout"]
    assert (timeout["connect"], timeout["read"]) == (DEFAULT_TIMEOUT.connect, None)
    # The unknown event type's id counts, the unfinished message's does not.
    assert route.calls[1].request.headers["Last-Event-ID"] == "3"


async def test_stream_moods_resumes_after_a_drop(
    api: respx.MockRouter, client: AsyncSessionMoodClient, sleeps: list[float]
) -> None:
    route = api.get("/v1/stream/moods").mock(
        side_effect=[
            _sse(b"retry: 2000\n\n", _message(5), error=httpx.ReadError("reset")),
            _sse(_message(6)),
        ]
    )
    async with client.stream_moods(last_event_id=4) as stream:
        assert [(await anext(stream)).id, (await anext(stream)).id] == [5, 6]
    assert [c.request.headers["Last-Event-ID"] for c in route.calls] == ["4", "5"]
    assert sleeps == [2.0]  # the server's retry: beats the 0.5 s backoff


async def test_stream_moods_reconnects_when_the_server_ends_it(
    api: respx.MockRouter, client: AsyncSessionMoodClient, sleeps: list[float]
) -> None:
    route = api.get("/v1/stream/moods").mock(side_effect=[_sse(_message(1)), _sse(_message(2))])
    stream = client.stream_moods()
    assert [(await anext(stream)).id, (await anext(stream)).id] == [1, 2]
    await stream.aclose()
    assert route.calls[1].request.headers["Last-Event-ID"] == "1"
    assert sleeps == [0.5]


async def test_stream_moods_gives_up_after_max_retries_per_disconnect(
    api: respx.MockRouter, client: AsyncSessionMoodClient, sleeps: list[float]
) -> None:
    route = api.get("/v1/stream/moods").mock(
        side_effect=_responses(
            _sse(_message(1), error=httpx.RemoteProtocolError("peer closed")),
            httpx.ConnectError,
            # Connected again: the next disconnect gets max_retries afresh.
            _sse(_message(2)),
            503,
            httpx.ConnectError,
        )
    )
    async with client.stream_moods() as stream:
        assert (await anext(stream)).id == 1
        assert (await anext(stream)).id == 2
        with pytest.raises(APIConnectionError) as caught:
            await anext(stream)
    assert isinstance(caught.value.__cause__, httpx.ConnectError)
    assert sleeps == [0.5, 1.0, 0.5, 1.0]
    assert route.call_count == 5


async def test_stream_moods_errors_are_not_retried(
    api: respx.MockRouter, client: AsyncSessionMoodClient, sleeps: list[float]
) -> None:
    api.get("/v1/stream/moods").mock(
        side_effect=[
            httpx.Response(403, json={"error": "publishable keys may not"}),
            httpx.Response(200, json={"not": "a stream"}),
            _sse(b'event: mood.changed\ndata: {"mood": "angry"}\n\n'),
        ]
    )
    async with client.stream_moods() as stream:
        with pytest.raises(PermissionDeniedError):
            await anext(stream)
    async with client.stream_moods() as stream:
        with pytest.raises(APIResponseValidationError, match="not text/event-stream"):
            await anext(stream)
    async with client.stream_moods() as stream:
        with pytest.raises(APIResponseValidationError, match="not a MoodChange") as caught:
            await anext(stream)
    assert caught.value.body == '{"mood": "angry"}'
    assert sleeps == []


async def test_stream_moods_closes_its_connection(
    api: respx.MockRouter, client: AsyncSessionMoodClient
) -> None:
    body = Chunks(_message(1), _message(2))
    api.get("/v1/stream/moods").mock(
        return_value=httpx.Response(200, headers={"Content-Type": "text/event-stream"}, stream=body)
    )
    async with client.stream_moods() as stream:
        async for change in stream:
            assert change.id == 1
            break
        assert not body.closed
    assert body.closed
    assert stream.closed
    with pytest.raises(StopAsyncIteration):
        await anext(stream)
    with pytest.raises(ValueError, match="last_event_id"):
        client.stream_moods(last_event_id=-1)
