"""AsyncSessionMoodClient against a mocked transport (respx): every method,
session ids, errors, configuration and the HTTP client it uses.

The sync copy is generated from the async tests by scripts/unasync.py.
The clock is patched everywhere: nothing here really sleeps.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta, timezone
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
from tests.client.support import (
    BASE,
    KEY,
    MOOD,
    POSTED,
    QUOTA_429,
    _responses,
    _sent_json,
    patch_clock,
)

pytestmark = pytest.mark.anyio


@pytest.fixture
async def client(
    monkeypatch: pytest.MonkeyPatch, sleeps: list[float]
) -> AsyncIterator[AsyncSessionMoodClient]:
    async with AsyncSessionMoodClient(KEY, base_url=BASE) as c:
        patch_clock(monkeypatch, c, sleeps)
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
